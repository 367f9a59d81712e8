# Project-wide compile settings, applied per target (never globally) so that
# third-party code and generated sources are not forced through our flags.

set(UK_WARNINGS
  -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
  -Wcast-qual -Wwrite-strings -Wvla -Wimplicit-fallthrough)

set(UK_HARDENING_COMPILE -fstack-protector-strong -fPIE)
set(UK_HARDENING_LINK -Wl,-z,relro -Wl,-z,now -pie)

set(UK_DEFINES OPENSSL_API_COMPAT=30000 OPENSSL_NO_DEPRECATED _GNU_SOURCE)

if(UK_SANITIZE AND UK_TSAN)
  message(FATAL_ERROR "UK_SANITIZE (ASan+UBSan) and UK_TSAN cannot be combined")
endif()
if(UK_SANITIZE)
  set(UK_SAN_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all
    -fno-omit-frame-pointer)
elseif(UK_TSAN)
  set(UK_SAN_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
endif()

# uk_target_defaults(TARGET): warnings, hardening, sanitizers and defines.
function(uk_target_defaults target)
  # Source paths in debug info and __FILE__ relative to the tree: a package carries no build path.
  target_compile_options(${target} PRIVATE ${UK_WARNINGS} ${UK_HARDENING_COMPILE}
    ${UK_SAN_FLAGS} -ffile-prefix-map=${CMAKE_SOURCE_DIR}/=)
  if(UK_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  target_compile_definitions(${target} PRIVATE ${UK_DEFINES})
  # _FORTIFY_SOURCE needs optimisation; sanitizer builds run -O1 and keep it.
  if(NOT CMAKE_BUILD_TYPE STREQUAL "Debug" OR UK_SANITIZE OR UK_TSAN)
    target_compile_definitions(${target} PRIVATE _FORTIFY_SOURCE=2)
  endif()
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "EXECUTABLE")
    target_link_options(${target} PRIVATE ${UK_HARDENING_LINK} ${UK_SAN_FLAGS})
  elseif(type STREQUAL "SHARED_LIBRARY" OR type STREQUAL "MODULE_LIBRARY")
    target_link_options(${target} PRIVATE -Wl,-z,relro -Wl,-z,now ${UK_SAN_FLAGS})
  endif()
endfunction()

# uk_unit_test(NAME SOURCES... LIBS ...): a cmocka test run by ctest.
function(uk_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  uk_target_defaults(${name})
  target_link_libraries(${name} PRIVATE PkgConfig::CMOCKA ${T_LIBS})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "unit;${T_LABELS}" TIMEOUT 120)
endfunction()
