#!/usr/bin/env bash
# Builds the Docker image meridian:local FROM scratch: the meridian binary
# plus exactly the shared libraries `ldd` lists for it (and the dynamic
# loader). No base image is pulled, so no registry is needed.
#
#   MERIDIAN_BIN=/path/to/meridian deploy/build-image.sh   # use this binary
#   deploy/build-image.sh                                   # cargo build --release first
#
# Environment:
#   MERIDIAN_BIN     the binary to package; unset: `cargo build --release -p meridian`
#                    (into CARGO_TARGET_DIR, default $HOME/.cache/meridian/target)
#   MERIDIAN_IMAGE   the tag to build (default meridian:local)
#
# Running it again with the same binary rebuilds nothing (Docker's layer
# cache) and leaves the tag where it was.
set -euo pipefail

IMAGE="${MERIDIAN_IMAGE:-meridian:local}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-image: error: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
command -v ldd >/dev/null || die "ldd is not installed (package libc-bin)"

# The binary: given, or a release build.
if [ -n "${MERIDIAN_BIN:-}" ]; then
    bin="$MERIDIAN_BIN"
else
    command -v cargo >/dev/null || die "MERIDIAN_BIN is unset and cargo is not installed"
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/meridian/target}"
    log "MERIDIAN_BIN unset: cargo build --release -p meridian (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$repo" && cargo build --release -p meridian)
    bin="$CARGO_TARGET_DIR/release/meridian"
fi
{ [ -f "$bin" ] && [ -x "$bin" ]; } || die "not an executable file: $bin"
bin="$(readlink -f "$bin")"
file_type="$(head -c 4 "$bin" | od -An -c | tr -d ' ')"
[ "$file_type" = '177ELF' ] || die "not an ELF binary: $bin"

ctx="$(mktemp -d /tmp/meridian-image.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/local/bin" "$root/data" "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"

# Copy the binary first, then check the copy: if the file is being rewritten
# by a build while we copy, the two checksums differ and we stop.
cp "$bin" "$root/usr/local/bin/meridian"
sum="$(sha256sum "$root/usr/local/bin/meridian" | cut -d' ' -f1)"
[ "$sum" = "$(sha256sum "$bin" | cut -d' ' -f1)" ] \
    || die "$bin changed while it was copied (is a build writing it?); try again"

# The libraries, each at the path ldd resolved it to (symlinks followed), so
# the loader finds them where the binary's host found them.
# ldd lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)",
# "/lib64/ld-linux-x86-64.so.2 (0x...)", "linux-vdso.so.1 (0x...)".
ldd_out="$(ldd "$bin" 2>&1)" || die "ldd $bin failed: $ldd_out"
if grep -q 'not a dynamic executable\|statically linked' <<<"$ldd_out"; then
    log "$bin is statically linked: no libraries to copy"
fi
if grep -q '=> not found' <<<"$ldd_out"; then
    die "ldd cannot resolve some libraries of $bin:
$(grep '=> not found' <<<"$ldd_out")"
fi
libs=()
while read -r path; do
    [ -n "$path" ] && libs+=("$path")
done < <(awk '
    $2 == "=>" && $3 ~ /^\// { print $3; next }
    $1 ~ /^\// { print $1 }
' <<<"$ldd_out" | sort -u)
libdirs=()
for lib in "${libs[@]}"; do
    [ -e "$lib" ] || die "ldd listed $lib but it does not exist"
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
    dir="$(dirname "$lib")"
    case " ${libdirs[*]-} " in *" $dir "*) ;; *) libdirs+=("$dir") ;; esac
done
ld_path="$(IFS=:; echo "${libdirs[*]-}")"

# Name lookups (node2:6433): glibc >= 2.34 has the files and dns NSS modules
# built in; say in which order to use them. Docker mounts /etc/hosts and
# /etc/resolv.conf into every container.
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"

# Same files, same metadata: the classic builder's COPY cache also looks at
# modes and times, so pin them and a rebuild of the same binary is a no-op.
chmod 0755 "$root/usr/local/bin/meridian"
find "$root" -type d ! -path "$root/tmp" -exec chmod 0755 {} +
find "$root" -exec touch -h -d @0 {} +

cat >"$ctx/Dockerfile" <<EOF
FROM scratch
COPY rootfs/ /
ENV LD_LIBRARY_PATH=$ld_path
LABEL org.opencontainers.image.title="meridian" \\
      org.opencontainers.image.description="Meridian: the meridian binary and its ldd libraries, FROM scratch" \\
      meridian.binary.sha256="$sum"
VOLUME ["/data"]
EXPOSE 6433 5433
ENTRYPOINT ["/usr/local/bin/meridian"]
CMD ["--help"]
EOF

log "image $IMAGE from $bin (sha256 ${sum:0:12}) with ${#libs[@]} libraries:"
for lib in "${libs[@]}"; do printf '      %s\n' "$lib" >&2; done

# Without the buildx plugin, recent docker CLIs refuse BuildKit; the classic
# builder is enough for a FROM scratch image.
if [ -z "${DOCKER_BUILDKIT:-}" ] && ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
old_id="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
build_log="$(mktemp /tmp/meridian-build-log.XXXXXX)"
if ! docker build --tag "$IMAGE" "$ctx" >"$build_log" 2>&1; then
    cat "$build_log" >&2
    rm -f "$build_log"
    die "docker build failed"
fi
rm -f "$build_log"
new_id="$(docker image inspect --format '{{.Id}}' "$IMAGE")"
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    # The previous build, now untagged: remove it unless something still uses it.
    if [ -z "$(docker image inspect --format '{{join .RepoTags ","}}' "$old_id" 2>/dev/null)" ]; then
        docker image rm "$old_id" >/dev/null 2>&1 || true
    fi
fi

# A smoke test: the binary starts inside the image (loader and libraries found).
if ! out="$(docker run --rm "$IMAGE" --version 2>&1)"; then
    die "the image was built but the binary does not run in it: $out"
fi
if [ "$old_id" = "$new_id" ]; then
    log "$IMAGE is unchanged (${new_id:7:12})"
fi
log "built $IMAGE ${new_id:7:12} ($out, $(docker image inspect --format '{{.Size}}' "$IMAGE") bytes)"
