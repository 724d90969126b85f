#!/usr/bin/env bash
# hsm/setup.sh [DIR]: a SoftHSM2 token for portal-core under DIR (default: .hsm/ in the project).
#
# Installs softhsm2 and opensc when missing (apt-get, as root), writes DIR/softhsm2.conf,
# initialises a token labelled "portal-core" with random PINs, and writes DIR/env:
#
#   export SOFTHSM2_CONF=...  PKCS11_MODULE=...  PKCS11_TOKEN_LABEL=...  PKCS11_USER_PIN=...
#
# Running it again keeps the token and its keys. DIR holds the token and its PINs: it is
# created mode 0700 and must stay private. Exit status 3 means the packages are missing and
# could not be installed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-$ROOT/.hsm}
LABEL=portal-core

say() { printf 'hsm/setup.sh: %s\n' "$*" >&2; }

# Single-quote a value for a shell `export` line (a quote becomes '\'').
quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

find_module() {
    local candidate
    for candidate in \
        /usr/lib/softhsm/libsofthsm2.so \
        /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
        /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so \
        /usr/lib64/pkcs11/libsofthsm2.so \
        /usr/local/lib/softhsm/libsofthsm2.so \
        /opt/homebrew/lib/softhsm/libsofthsm2.so; do
        if [ -f "$candidate" ]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

install_packages() {
    if command -v softhsm2-util >/dev/null && command -v pkcs11-tool >/dev/null && find_module >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        say "installing softhsm2 and opensc with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq </dev/null >/dev/null
        apt-get install -y -qq --no-install-recommends softhsm2 opensc </dev/null >/dev/null
        return 0
    fi
    say "SoftHSM2 is not installed. Install it, then run this script again:"
    say "  Debian/Ubuntu: sudo apt-get install softhsm2 opensc"
    say "  Fedora:        sudo dnf install softhsm opensc"
    say "  macOS:         brew install softhsm opensc"
    exit 3
}

# Random PIN: 32 hex digits from the kernel's CSPRNG.
random_pin() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

token_exists() {
    softhsm2-util --show-slots 2>/dev/null | grep -Eq "^[[:space:]]*Label:[[:space:]]+$LABEL[[:space:]]*$"
}

install_packages
MODULE=$(find_module) || { say "libsofthsm2.so not found after installing softhsm2"; exit 3; }

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
chmod 700 "$DIR"
mkdir -p "$DIR/tokens"
CONF="$DIR/softhsm2.conf"
TEMPLATE=$(<"$ROOT/hsm/softhsm2.conf.in")
# The replacement is quoted: bash 5.2 would otherwise read a "&" in DIR as the matched text.
printf '%s\n' "${TEMPLATE//@TOKENDIR@/"$DIR/tokens"}" >"$CONF.tmp"
mv -f "$CONF.tmp" "$CONF"
export SOFTHSM2_CONF="$CONF"

if [ -f "$DIR/env" ] && token_exists; then
    say "token '$LABEL' ready in $DIR (source $DIR/env)"
    exit 0
fi

# A token without an env file is left from an interrupted run: its PIN is lost, so start over.
if token_exists; then
    say "removing token '$LABEL' left without its PINs by an interrupted run"
    softhsm2-util --delete-token --token "$LABEL" >/dev/null
fi

umask 077
USER_PIN=$(random_pin)
SO_PIN=$(random_pin)
softhsm2-util --init-token --free --label "$LABEL" --pin "$USER_PIN" --so-pin "$SO_PIN" >/dev/null
printf '%s\n' "$SO_PIN" >"$DIR/so-pin.tmp"
mv -f "$DIR/so-pin.tmp" "$DIR/so-pin"
{
    printf '# Written by hsm/setup.sh: the SoftHSM2 token portal-core uses. Keep private.\n'
    printf 'export SOFTHSM2_CONF=%s\n' "$(quote "$CONF")"
    printf 'export PKCS11_MODULE=%s\n' "$(quote "$MODULE")"
    printf 'export PKCS11_TOKEN_LABEL=%s\n' "$(quote "$LABEL")"
    printf 'export PKCS11_USER_PIN=%s\n' "$(quote "$USER_PIN")"
} >"$DIR/env.tmp"
# The env file appears only once the token exists: a half-made setup is never mistaken for one.
mv -f "$DIR/env.tmp" "$DIR/env"
say "token '$LABEL' initialised in $DIR (source $DIR/env)"
