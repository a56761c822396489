#!/usr/bin/env bash
# Builds the local base image for the runtime image: a minimal Debian bookworm
# (debootstrap, from Debian's packages) with Debian's python3 (3.11), venv
# support and tini. No registry is reachable here, so the Dockerfile's public
# python:3.11-slim default cannot be pulled. Prints the image tag.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root

MIRROR=${FLUX_E2E_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3,python3-venv,tini,ca-certificates
key=$(cat "$0" <(echo "$DEBIAN_SUITE $PACKAGES") | sha256sum | cut -c1-12)
tag="$BASE_IMAGE-$key"
if podman_ image exists "$tag"; then echo "$tag"; exit 0; fi

rootfs_tar="$IMAGE_CACHE/base-$DEBIAN_SUITE-$key.tar"
if [[ ! -s $rootfs_tar ]]; then
  log "debootstrap $DEBIAN_SUITE ($PACKAGES) from $MIRROR: takes a few minutes"
  mkdir -p "$IMAGE_CACHE"
  work=$(mktemp -d)
  trap 'umount -R "$work/rootfs/proc" "$work/rootfs/sys" 2>/dev/null || true; rm -rf "$work"' EXIT
  debootstrap --variant=minbase --include="$PACKAGES" "$DEBIAN_SUITE" "$work/rootfs" "$MIRROR" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  # Smaller image: no package lists, caches or docs.
  rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/*.bin \
    "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/usr/share/doc/* \
    "$work"/rootfs/usr/share/man/* "$work"/rootfs/var/log/*.log
  tar -C "$work/rootfs" --numeric-owner -cf "$rootfs_tar.tmp" .
  mv "$rootfs_tar.tmp" "$rootfs_tar"
fi
log "importing base image $tag"
podman_ import --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' "$rootfs_tar" "$tag" >/dev/null
echo "$tag"
