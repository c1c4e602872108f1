# Shared by scripts/demo and scripts/test: install what a build needs, once.
# Sourced, not run. Works as root on Debian/Ubuntu; elsewhere it tells you
# what to install.

# Where builds go: outside the clone, so every clone and CI reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/meridian/target}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# apt-installs the Debian packages given whose commands/files are missing.
apt_install() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    if ! command -v apt-get >/dev/null; then
        log "please install: $* (no apt-get on this machine)"
        return 1
    fi
    log "installing $* with apt-get"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

ensure_build_deps() {
    local missing=()
    # The rocksdb crate compiles RocksDB (C++) and runs bindgen on its headers.
    command -v cc >/dev/null || missing+=(build-essential)
    command -v c++ >/dev/null || missing+=(g++)
    command -v clang >/dev/null || missing+=(clang)
    if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 \
        && ! ls /usr/lib/*/libclang*.so* >/dev/null 2>&1; then
        missing+=(libclang-dev)
    fi
    command -v curl >/dev/null || missing+=(curl)
    command -v git >/dev/null || missing+=(git)
    if [ ${#missing[@]} -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
    # Rust itself, through rustup, when the machine has none.
    if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null; then
        log "installing the Rust toolchain with rustup"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if command -v rustup >/dev/null; then
        for component in rustfmt clippy; do
            if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
                log "adding the $component component"
                rustup component add "$component"
            fi
        done
    fi
    # protoc is vendored by the protoc-bin-vendored crate: nothing to install.
}

# What the wire-protocol tests drive: psql, the PostgreSQL JDBC driver (with a
# JDK to compile the test client), and psycopg 3 in a virtualenv of our own
# (Debian's system Python refuses pip installs).
ensure_test_deps() {
    local missing=()
    command -v psql >/dev/null || missing+=(postgresql-client)
    command -v javac >/dev/null || missing+=(default-jdk-headless)
    [ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
    command -v python3 >/dev/null || missing+=(python3)
    if command -v python3 >/dev/null && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        missing+=(python3-venv)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
    local venv="$HOME/.cache/meridian/venv"
    if [ ! -x "$venv/bin/python3" ] || ! "$venv/bin/python3" -c 'import psycopg' 2>/dev/null; then
        log "installing psycopg 3 into $venv"
        python3 -m venv "$venv"
        "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check "psycopg[binary]"
    fi
    export PATH="$venv/bin:$PATH"
    # The client tests fail, rather than skip, when a client is missing.
    export MERIDIAN_REQUIRE_CLIENTS=1
}
