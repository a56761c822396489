#!/usr/bin/env bash
# import-image.sh <docker-archive tarball> <image name>
# Imports an image into the local cluster's containerd (k8s.io namespace, where
# the kubelet looks), unless that exact tarball is already imported.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root
tar=$1 name=$2
daemon_pid containerd >/dev/null || die "the local cluster is not running: make cluster-up"
ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
stamp=$(basename "$tar" .tar)
if ctr_ images ls "name==$name" | grep -q "flux.dev/source=$stamp"; then
  log "$name already imported"
  exit 0
fi
log "importing $name into containerd"
ctr_ images import "$tar" >/dev/null
ctr_ images ls -q "name==$name" | grep -qx "$name" || die "$name not found after import"
# Remember which tarball this is, so an unchanged image is not imported again.
ctr_ images label "$name" "flux.dev/source=$stamp" >/dev/null
