#!/usr/bin/env bash
# Builds the Cronhook image with buildah: no daemon, and no registry.
# It is the image the Dockerfile's runtime stage describes, with two
# differences. The base is Debian bookworm's minimal system, made from
# Debian's own packages by debootstrap instead of pulled as
# debian:bookworm-slim. The binary is this checkout's release build
# instead of one from the rust image. Use it where no container registry
# is reachable; elsewhere `buildah build -t cronhook .` (or `docker
# build`) reads the Dockerfile.
#
#   sudo apt-get install buildah debootstrap     # Debian 12
#   sudo deploy/build-image.sh [TAG]             # default localhost/cronhook:latest
#   sudo podman run -p 8080:8080 -e CRONHOOK_ROOT_TOKEN=chk_… localhost/cronhook
#
# Run as root (debootstrap and buildah's storage want it), from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-localhost/cronhook:latest}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
for tool in buildah debootstrap cargo; do
    command -v "$tool" >/dev/null || { echo "build-image: $tool is needed" >&2; exit 1; }
done

cargo build --release --locked --bin cronhook

ctr=$(buildah from scratch)
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
root=$(buildah mount "$ctr")
debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror"
# What a running service never reads: package lists, caches, manuals.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*
chroot "$root" useradd --system --uid 10001 --home-dir /var/lib/cronhook --create-home cronhook
install -m 0755 target/release/cronhook "$root/usr/local/bin/cronhook"
buildah umount "$ctr" >/dev/null

# As in the Dockerfile: a non-root user, the data directory a volume
# (the SQLite store and cronhook.key), the healthcheck the binary answers.
buildah config \
    --user cronhook \
    --workingdir /var/lib/cronhook \
    --volume /var/lib/cronhook \
    --env CRONHOOK_LISTEN=0.0.0.0:8080 \
    --port 8080 \
    --healthcheck 'CMD cronhook healthcheck' \
    --healthcheck-interval 10s --healthcheck-timeout 6s \
    --healthcheck-start-period 30s --healthcheck-retries 3 \
    --entrypoint '["cronhook"]' \
    --cmd serve \
    "$ctr"
# Docker's format: OCI's has no HEALTHCHECK.
buildah commit --format docker --rm "$ctr" "$tag"
trap - EXIT
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$tag"
