#!/bin/sh
# Make sure the Debian packages Borderlane needs are installed.
# As root, installs what is missing (one apt-get update, then one install). Otherwise prints the
# one command to run and fails. Fast when everything is there: it only asks dpkg.
set -eu

PYTHON=${PYTHON:-python3}
# postgresql: server binaries for the tests' own throwaway clusters (tests/harness/postgres.py).
# Debian also creates and starts a system cluster on port 5432; Borderlane does not use it.
# iproute2, nftables: network namespaces and silent partitions for the chaos tests
# (tests/harness/netns.py); faketime, libfaketime: clock jumps on the kiosk (test_chaos_clock).
# e2fsprogs, mount: ext4 file systems on loop devices, encrypted (images/encrypt-state.sh,
# test_encryption_at_rest).
PACKAGES="mosquitto mosquitto-clients pcscd vsmartcard-vpcd libpcsclite-dev swig socat
build-essential pkg-config chromium chromium-driver postgresql iproute2 nftables faketime
libfaketime e2fsprogs mount"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "borderlane: $PYTHON not found; install Python 3.11 (sudo apt-get install -y python3)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "borderlane: $("$PYTHON" --version 2>&1) is too old; Python 3.11 or newer is required" >&2
    exit 1
fi
# Debian splits venv/ensurepip and the C headers (needed to build pyscard) out of python3.
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    PACKAGES="$PACKAGES python3-venv"
fi
if ! "$PYTHON" -c 'import os, sysconfig, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    PACKAGES="$PACKAGES python3-dev"
fi

missing=""
for package in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $package" ;;
    esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "borderlane: missing system packages; run: sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "borderlane: installing system packages:$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
