#!/usr/bin/env bash
# OpenSC as the judge: card recognised as PIV, the demo certificates listed
# and read byte for byte (equal to what yubico-piv-tool reads), PKCS#11
# signatures (ECDSA on 9C, RSA PKCS#1 on 9A) verified by openssl.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=opensc_checks.sh
. "$(dirname "$0")/opensc_checks.sh"

rig_up "$tmp/rig"
opensc_checks "yubico profile"
