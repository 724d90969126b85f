#!/usr/bin/env bash
# pg/setup.sh: the PostgreSQL server programs the tests start a throwaway cluster with.
#
# Installs Debian's postgresql package when initdb is missing (apt-get, as root), then
# prints the directory holding initdb, pg_ctl and postgres on stdout. It starts nothing and
# makes no cluster: tests/pg_cluster.py does, in a temporary directory, for one test run.
# Exit status 3 means the programs are missing and could not be installed.
set -euo pipefail

say() { printf 'pg/setup.sh: %s\n' "$*" >&2; }

# The newest server of Debian's layout (/usr/lib/postgresql/VERSION/bin), else the initdb
# on PATH (Fedora, Homebrew), else the one pg_config names.
find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dir=$(dirname "$(command -v initdb)")
        printf '%s\n' "$dir"
        return 0
    fi
    if command -v pg_config >/dev/null; then
        dir=$(pg_config --bindir 2>/dev/null) || return 1
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    fi
    return 1
}

if find_bindir; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing postgresql with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null >/dev/null
    apt-get install -y -qq --no-install-recommends postgresql </dev/null >/dev/null
    if find_bindir; then
        exit 0
    fi
    say "initdb not found after installing postgresql"
    exit 3
fi
say "the PostgreSQL server is not installed. Install it, then run the tests again:"
say "  Debian/Ubuntu: sudo apt-get install postgresql"
say "  Fedora:        sudo dnf install postgresql-server"
say "  macOS:         brew install postgresql"
say "or point the tests at a server: PORTAL_PG_DSN=postgresql://USER@HOST/DB (a role that may CREATE DATABASE)"
exit 3
