#!/usr/bin/env bash
# Builds the runtime image (runtime_image/Dockerfile) with podman on the local
# Debian base, saves it as a docker-archive tarball in the image cache (keyed
# by the Dockerfile, the wheel's contents and the base) and prints its path.
# Usage: build-runtime-image.sh [python used to build the wheel]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root

PY=${1:-$REPO_ROOT/.venv/bin/python}
[[ -x $PY ]] || die "$PY not found: run 'make venv' first"
# FLUX_E2E_BASE_IMAGE (e.g. python:3.11-slim) where a registry is reachable;
# otherwise the local debootstrapped base, which must never be pulled.
if [[ -n ${FLUX_E2E_BASE_IMAGE:-} ]]; then
  base=$FLUX_E2E_BASE_IMAGE pull=missing
else
  base=$("$CLUSTER_DIR/scripts/build-base-image.sh") pull=never
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
log "building the project wheel"
(cd "$REPO_ROOT" && "$PY" -m pip wheel --quiet --no-deps -w "$ctx/dist" .) \
  || die "building the wheel failed"
wheel=$(ls "$ctx"/dist/*.whl)
# Hash the files inside the wheel, not the zip (whose timestamps vary).
wheel_hash=$("$PY" - "$wheel" <<'PY'
import hashlib, sys, zipfile
h = hashlib.sha256()
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in sorted(z.namelist()):
        h.update(name.encode() + b"\0" + z.read(name))
print(h.hexdigest())
PY
)
# The build context is runtime_image/ (without any dist/ of its own) plus the wheel.
mapfile -t src_files < <(cd "$REPO_ROOT/runtime_image" \
  && find . \( -path ./dist -o -name __pycache__ \) -prune -o -type f -print | sort)
key=$( (cd "$REPO_ROOT/runtime_image" && cat "${src_files[@]}"
  echo "$wheel_hash $base $RUNTIME_IMAGE") | sha256sum | cut -c1-16)
out="$IMAGE_CACHE/runtime-$key.tar"
if [[ -s $out ]]; then
  log "runtime image unchanged: $out"
  echo "$out"
  exit 0
fi

(cd "$REPO_ROOT/runtime_image" && cp --parents "${src_files[@]}" "$ctx/")
build_args=(--build-arg "BASE_IMAGE=$base")
# pip inside the build must trust the same CAs as this host (it may sit behind
# a TLS-intercepting proxy).
host_ca=/etc/ssl/certs/ca-certificates.crt
if [[ -f $host_ca ]]; then
  build_args+=(-v "$host_ca:/run/flux-build-ca.pem:ro" --build-arg PIP_CERT=/run/flux-build-ca.pem)
fi
log "building $RUNTIME_IMAGE (base $base)"
podman_ build --network host --pull="$pull" "${build_args[@]}" -t "$RUNTIME_IMAGE" \
  -f "$ctx/Dockerfile" "$ctx" >&2
rm -f "$IMAGE_CACHE"/runtime-*.tar  # keep only the current one
podman_ save --quiet --format docker-archive -o "$out.tmp" "$RUNTIME_IMAGE" >&2
mv "$out.tmp" "$out"
log "runtime image saved: $out"
echo "$out"
