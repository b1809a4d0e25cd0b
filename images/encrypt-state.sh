#!/bin/sh
# Set up the kiosk's state directory encrypted at rest (ext4 encryption, fscrypt v2), once, when
# the image is first booted and before the agent has written anything. Run as root.
#
#   images/encrypt-state.sh [--key-file PATH] [--cipher aes|adiantum] [--owner USER] [STATE_DIR]
#
# STATE_DIR defaults to /var/lib/borderlane, the key file to /etc/borderlane/state.key. What it
# does, each step skipped when already done, so running it again is harmless:
#   1. turns on the file system's "encrypt" feature (tune2fs -O encrypt; ext4 only, a flag that
#      stays on; the Pi boots from its FAT partition, so the boot loader need not read it);
#   2. makes a 64-byte random key file (0600, root's) unless one is there, or takes the key
#      material from standard input with --key-file - (from whatever unseals it);
#   3. makes STATE_DIR an encrypted directory with that key (it must be missing or empty: an
#      encrypted directory starts empty) and leaves the key in the kernel;
#   4. gives STATE_DIR to the agent's user (--owner, default borderlane, when it exists).
# At every boot images/systemd/borderlane-unlock.service adds the key again before the agent
# starts; [storage] encrypted = true in kiosk.toml makes the agent refuse a plain directory.
#
# The key file on the same card protects nothing against a stolen card: see the README,
# "Personal data at rest", for where the key must live for the encryption to count.
#
# BORDERLANE_EDGE names the agent's binary (default /opt/borderlane/bin/borderlane-edge).
# Errors are one line on stderr and a non-zero exit status.
set -eu

EDGE=${BORDERLANE_EDGE:-/opt/borderlane/bin/borderlane-edge}
KEY_FILE=/etc/borderlane/state.key
CIPHER=aes
OWNER=borderlane
STATE_DIR=/var/lib/borderlane

fail() {
    echo "encrypt-state: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --key-file) [ $# -ge 2 ] || fail "--key-file needs a path"; KEY_FILE=$2; shift 2 ;;
        --cipher) [ $# -ge 2 ] || fail "--cipher needs a name"; CIPHER=$2; shift 2 ;;
        --owner) [ $# -ge 2 ] || fail "--owner needs a user"; OWNER=$2; shift 2 ;;
        -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) fail "unknown option $1" ;;
        *) STATE_DIR=$1; shift ;;
    esac
done

[ "$(id -u)" -eq 0 ] || fail "run as root (it changes the file system and the kernel's keys)"
[ -x "$EDGE" ] || fail "$EDGE not found; set BORDERLANE_EDGE to the agent's binary"

# 1. The file system under STATE_DIR (its parent when it does not exist yet).
existing=$STATE_DIR
[ -e "$existing" ] || existing=$(dirname "$STATE_DIR")
[ -d "$existing" ] || fail "$existing: no such directory"
fstype=$(findmnt -n -o FSTYPE -T "$existing")
device=$(findmnt -n -o SOURCE -T "$existing")
case "$fstype" in
    ext4)
        if ! dumpe2fs -h "$device" 2>/dev/null | grep -q '^Filesystem features:.* encrypt'; then
            tune2fs -O encrypt "$device" >/dev/null || fail "$device: tune2fs -O encrypt failed"
            echo "encrypt-state: turned on the encrypt feature of $device"
        fi
        ;;
    f2fs) ;; # made with -O encrypt by the image, or fscrypt refuses below with what to do
    *) fail "$existing is on $fstype; the state directory needs ext4 (or f2fs) for encryption" ;;
esac

# 2. The key material.
if [ "$KEY_FILE" != "-" ] && [ ! -e "$KEY_FILE" ]; then
    mkdir -p -m 0700 "$(dirname "$KEY_FILE")"
    "$EDGE" storage new-key "$KEY_FILE" >/dev/null
    echo "encrypt-state: made a new key, $KEY_FILE (0600)"
fi

# 3. The encrypted directory; an already encrypted one is unlocked (the key checked) instead.
if [ -d "$STATE_DIR" ] && "$EDGE" storage status "$STATE_DIR" | grep -q '"encrypted": true'; then
    "$EDGE" storage unlock --key-file "$KEY_FILE" "$STATE_DIR" >/dev/null
    echo "encrypt-state: $STATE_DIR was encrypted already; its key is in"
else
    "$EDGE" storage setup --key-file "$KEY_FILE" --cipher "$CIPHER" "$STATE_DIR" >/dev/null
    echo "encrypt-state: $STATE_DIR is encrypted ($CIPHER); its key is in"
fi

# 4. The agent's own directory, private (systemd's StateDirectoryMode=0700 says the same).
if id "$OWNER" >/dev/null 2>&1; then
    chown "$OWNER:" "$STATE_DIR"
fi
chmod 0700 "$STATE_DIR"
