/*
 * uk_tls.h - the local TLS identity of ukeyd: a keyless, name-constrained CA and one server
 * certificate for wss://127.0.0.1 and wss://localhost, trusted in the user's NSS database.
 *
 * What uk_tls_ensure makes, in STATE_DIR/tls/ (directory 0700, owned by us, never a symlink):
 *   ca.pem       0644  the CA certificate: EC P-256, CA:TRUE pathlen:0, keyCertSign + cRLSign,
 *                      critical nameConstraints permitting only IP 127.0.0.1/32, IP ::1/128 and
 *                      DNS localhost. Its private key is generated in memory, signs the CA
 *                      certificate and the server certificate, and is freed (OpenSSL wipes EC
 *                      private scalars on free); it is never serialised, so never on disk.
 *   server.pem   0644  the server certificate alone (lws loads it as a chain file): EC P-256,
 *                      SAN DNS:localhost, IP:127.0.0.1, IP:::1, EKU serverAuth, random 128-bit
 *                      serial, SKI/AKI, the same validity window as the CA.
 *   server.key   0600  the server private key, PKCS#8 PEM, unencrypted (the daemon must start
 *                      without a prompt), written temp + fsync + rename.
 *   nss-nickname 0644  the NSS nickname of the last successful add, so that a CA added under a
 *                      former hostname is still deleted on renewal and removal.
 * No chain file: lws loads server.pem with SSL_CTX_use_certificate_chain_file, and sending the
 * root along would only cost bytes (clients must already have it as a trust anchor).
 * The whole set is re-made (a new CA too: the old CA key no longer exists) when any file is
 * missing or damaged, the key does not match, the chain does not verify, server.key is readable by
 * group or others, or the server certificate ends within renew_before_days.
 * See docs/security.md, "Local TLS".
 *
 * NSS trust: Chrome and Chromium on Linux read user-added trust anchors from the NSS shared DB:
 * $HOME/.pki/nssdb when it exists, else (Chromium 146 and later) $XDG_DATA_HOME/pki/nssdb, where
 * XDG_DATA_HOME defaults to $HOME/.local/share. When that directory exists, uk_tls_ensure adds the
 * CA with trust "C,," (trusted to issue TLS server certificates, nothing else) under the nickname
 * "ukeyd local CA (HOSTNAME)", after deleting the certificates under that nickname and under the
 * one recorded in nss-nickname (the previous CA on renewal). It runs certutil (NSS tools) with
 * posix_spawn, never a shell, and names no other nickname. On every call it checks (certutil -L,
 * two runs of a few ms) that the database still holds the current CA with its trust, and adds it
 * again if not: Chrome may create the database after ukeyd's first start. It never creates one.
 * A missing certutil, a database with a password or a failing certutil is logged as a warning and
 * reported in uk_tls_paths.trust; it is not an error: the native-messaging endpoint needs no TLS.
 *
 * Thread: every function here blocks (file system, key generation, certutil for up to
 * UK_TLS_TOOL_TIMEOUT_MS per run). Call them at start-up, from the CLI, or from a worker thread;
 * never from the loop thread. Calls on one state dir are serialised by an flock on the tls/
 * directory, across threads and processes. certutil is reaped with waitpid on its own pid: do not
 * set SIGCHLD to SIG_IGN.
 *
 * Errors: functions return UK_OK or a negative UK_E_* code (uk_err.h). OpenSSL's error queue is
 * logged (uk_log) and cleared here; no OpenSSL string, path or certutil output reaches the caller.
 *   UK_E_CONFIG_INVALID  options missing or out of range (state_dir not absolute, path too long)
 *   UK_E_IO              a file or directory could not be created, read or written
 *   UK_E_TLS_ERROR       tls/ is not ours (owner, type), or OpenSSL failed
 *   UK_E_NO_MEMORY       out of memory
 */
#ifndef UK_TLS_H
#define UK_TLS_H

#include <stdbool.h>
#include <time.h>

/* Longest path handled (state dir, NSS dir and the file paths derived from them), with the NUL. */
#define UK_TLS_PATH_MAX 1024

/* Longest NSS nickname, with the NUL. */
#define UK_TLS_NICKNAME_MAX 128

/* Default: renew when the server certificate ends within this many days. */
#define UK_TLS_RENEW_BEFORE_DAYS 30u

/* Default validity of the CA and the server certificate, in days; also the maximum accepted. */
#define UK_TLS_VALIDITY_DAYS 825u

/* Longest run of one certutil command before it is killed. */
#define UK_TLS_TOOL_TIMEOUT_MS 30000

typedef struct uk_tls_options {
    /* Required, absolute: ukeyd's state directory; created (0700) if missing. tls/ lives in it. */
    const char *state_dir;
    /*
     * Home directory for the NSS database look-up. NULL: $HOME from the environment. "": no NSS
     * at all. Tests point it at a temporary directory.
     */
    const char *home;
    /*
     * XDG data directory for the Chromium 146+ location. NULL: $XDG_DATA_HOME when home is also
     * NULL, otherwise HOME/.local/share (so a test's home is never mixed with the real one).
     */
    const char *xdg_data_home;
    /* NSS database directory to use instead of the look-up above (tests, packagers). */
    const char *nssdb;
    /* certutil program: a path, or a name searched in PATH. NULL: "certutil". */
    const char *certutil;
    /* Renew when the server certificate ends within this many days. 0: UK_TLS_RENEW_BEFORE_DAYS. */
    unsigned renew_before_days;
    /* Validity of a new CA and server certificate in days, 1..UK_TLS_VALIDITY_DAYS. 0: default.
     * For tests (a short validity makes the next ensure renew). */
    unsigned validity_days;
} uk_tls_options;

/* What happened to (or is known of) the CA in the NSS database. */
typedef enum uk_tls_trust {
    UK_TLS_TRUST_NO_DB = 0, /* no NSS database found (or home ""): nothing to do */
    UK_TLS_TRUST_PRESENT,   /* our current CA was already there under our nickname */
    UK_TLS_TRUST_ADDED,     /* our CA was added now (old certificates under our nickname removed) */
    UK_TLS_TRUST_ABSENT,    /* uk_tls_info only: the database does not hold our current CA */
    UK_TLS_TRUST_NO_TOOL,   /* certutil was not found (warning logged) */
    UK_TLS_TRUST_FAILED,    /* certutil failed, e.g. the database has a password (warning logged) */
} uk_tls_trust;

/* Results of uk_tls_ensure, in the caller's storage; nothing to free. */
typedef struct uk_tls_paths {
    char dir[UK_TLS_PATH_MAX];   /* STATE_DIR/tls */
    char cert[UK_TLS_PATH_MAX];  /* server.pem, for lws ssl_cert_filepath */
    char key[UK_TLS_PATH_MAX];   /* server.key, for lws ssl_private_key_filepath */
    char ca[UK_TLS_PATH_MAX];    /* ca.pem */
    char nssdb[UK_TLS_PATH_MAX]; /* the NSS directory used, "" when none */
    char nickname[UK_TLS_NICKNAME_MAX];
    bool created;       /* the ceremony ran in this call (first time or renewal) */
    time_t not_after;   /* end of the server certificate (and of the CA) */
    uk_tls_trust trust; /* PRESENT, ADDED, NO_DB, NO_TOOL or FAILED */
} uk_tls_paths;

/* State for `ukeyctl doctor`, in the caller's storage. */
typedef struct uk_tls_status {
    bool present;       /* the three files exist, parse, match and verify at this moment */
    bool needs_renewal; /* not present, or the server certificate ends within the window */
    time_t not_after;   /* end of the server certificate; 0 when it could not be read */
    uk_tls_trust trust; /* NO_DB, PRESENT, ABSENT, NO_TOOL or FAILED */
    char nssdb[UK_TLS_PATH_MAX];
    char nickname[UK_TLS_NICKNAME_MAX];
} uk_tls_status;

/*
 * Make sure STATE_DIR/tls holds a valid set (see above), re-making it when needed, and that the
 * NSS database (when there is one) trusts the current CA. *out is filled on UK_OK and zeroed on
 * error. On error the previous set may have been replaced in part; the next call re-makes it.
 */
int uk_tls_ensure(const uk_tls_options *opt, uk_tls_paths *out) __attribute__((warn_unused_result));

/*
 * Undo uk_tls_ensure: delete the certificates under our nickname from the NSS database (when
 * there is one; certutil missing or failing is a logged warning), then the tls/ files and the
 * directory. Files of other names in tls/ are left, and so is the directory then. Removing what
 * is not there is not an error.
 */
int uk_tls_remove(const uk_tls_options *opt) __attribute__((warn_unused_result));

/*
 * Report the state without changing anything (no file written, no certutil -A/-D; certutil -L
 * is run when there is an NSS database). UK_OK also when nothing is set up: out->present false.
 */
int uk_tls_info(const uk_tls_options *opt, uk_tls_status *out) __attribute__((warn_unused_result));

/* Stable lower-case name of t for logs and doctor output ("present", "added", ...). */
const char *uk_tls_trust_name(uk_tls_trust t);

#endif
