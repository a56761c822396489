#!/usr/bin/env bash
# Builds the pod sandbox ("pause") image without a registry or an image
# builder: a static C binary in a one-layer docker-archive tarball that
# `ctr images import` accepts. Prints the cached tarball path.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

key=$(cat "$CLUSTER_DIR/pause/pause.c" "$0" <(echo "$PAUSE_IMAGE") | sha256sum | cut -c1-16)
out="$IMAGE_CACHE/pause-$key.tar"
if [[ -s $out ]]; then echo "$out"; exit 0; fi

log "building pause image $PAUSE_IMAGE"
mkdir -p "$IMAGE_CACHE"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs" "$work/archive"
gcc -static -Os -Wall -Wextra -o "$work/rootfs/pause" "$CLUSTER_DIR/pause/pause.c"
strip "$work/rootfs/pause"

# Reproducible layer: fixed owner and mtime, sorted entries.
tar -C "$work/rootfs" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
  -cf "$work/layer.tar" pause
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
mkdir -p "$work/archive/$diff_id"
mv "$work/layer.tar" "$work/archive/$diff_id/layer.tar"

cat >"$work/config.json" <<JSON
{"architecture":"amd64","os":"linux",
 "config":{"Entrypoint":["/pause"],"User":"65535:65535","WorkingDir":"/"},
 "rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},
 "history":[{"created_by":"flux-e2e cluster/pause/pause.c"}]}
JSON
cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/archive/$cfg.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' \
  "$cfg" "$PAUSE_IMAGE" "$diff_id" >"$work/archive/manifest.json"

tar -C "$work/archive" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
  -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "$out"
