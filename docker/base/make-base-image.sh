#!/usr/bin/env bash
# Build the local base image llmperf-nb/base:bookworm with no registry:
#   debootstrap --variant=minbase bookworm ROOTFS MIRROR; tar -C ROOTFS -c . | docker import - IMAGE
# Skips if the image already exists (FORCE=1 rebuilds). Run as root with DOCKER_HOST set
# (see docker/dev/start-dockerd.sh). Env: IMAGE, SUITE, MIRROR, WORK, HOST_CA.
# HOST_CA=1 (default) copies the host's locally added CAs (/usr/local/share/ca-certificates/*.crt)
# into the image, so that HTTPS through a TLS-intercepting proxy (as on the dev/CI machine) works
# once an image installs ca-certificates.
set -euo pipefail

SUITE=${SUITE:-bookworm}
IMAGE=${IMAGE:-llmperf-nb/base:$SUITE}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
WORK=${WORK:-$(mktemp -d /tmp/llmperf-base.XXXXXX)}
ROOTFS="$WORK/rootfs"
log() { echo "make-base-image: $*" >&2; }

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE exists, skipping (FORCE=1 to rebuild)"
    exit 0
fi
command -v debootstrap >/dev/null || { log "debootstrap missing (apt-get install -y debootstrap)"; exit 1; }
trap 'rm -rf "$WORK"; log "done in ${SECONDS} s (incl. cleanup)"' EXIT

t0=$(date +%s)
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >&2
t1=$(date +%s)

# Same sources as a stock Debian image (updates + security), and no caches in the image.
cat >"$ROOTFS/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SRC
# apt in a container: no recommends, no docs, no caches (as debian:*-slim images do).
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$ROOTFS/etc/apt/apt.conf.d/90llmperf-norecommends"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log
: >"$ROOTFS/etc/hostname"
if [ "${HOST_CA:-1}" = 1 ] && ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    log "adding host CAs: $(ls /usr/local/share/ca-certificates/*.crt | xargs -n1 basename | tr '\n' ' ')"
    mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
fi

tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "debootstrap --variant=minbase $SUITE $MIRROR" \
    - "$IMAGE" >&2
t2=$(date +%s)

log "debootstrap $((t1 - t0)) s, import $((t2 - t1)) s, size $(docker image inspect -f '{{.Size}}' "$IMAGE") bytes"
