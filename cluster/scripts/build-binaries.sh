#!/usr/bin/env bash
# Builds the cluster binaries from Go modules (via the Go module proxy) into
# $FLUX_E2E_CACHE/<k8s-version>/bin, skipping any that are already cached.
# A cold build is a few minutes per large binary on 2 cores.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

command -v go >/dev/null || die "go toolchain not found (need Go >= $GO_MIN_VERSION)"
mkdir -p "$BIN_DIR"

# The versions in versions.env and the tools go.mod files must agree.
check_pin() { # <go.mod> <module> <version>
  grep -Eq "^[[:space:]]*(require )?$2 $3( |\$)" "$1" \
    || die "$1 does not pin $2 $3 (versions.env); edit it and run 'go mod tidy' there"
}
check_pin "$CLUSTER_DIR/tools/go.mod" k8s.io/kubernetes "$K8S_VERSION"
check_pin "$CLUSTER_DIR/tools/go.mod" 'k8s.io/client-go =>' "k8s.io/client-go $K8S_STAGING_VERSION"
check_pin "$CLUSTER_DIR/tools/etcd/go.mod" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
check_pin "$CLUSTER_DIR/tools/helm/go.mod" helm.sh/helm/v3 "$HELM_VERSION"
check_pin "$CLUSTER_DIR/tools/kwok/go.mod" sigs.k8s.io/kwok "$KWOK_VERSION"

export GOFLAGS=-mod=mod CGO_ENABLED=0
# Version stamps, as the Kubernetes release build sets them: components report
# and compare these (kubectl version skew, node info).
k8s_ldflags() {
  local v=${K8S_VERSION#v} major minor f
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  for f in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    printf -- "-X '%s.gitVersion=%s' -X '%s.gitMajor=%s' -X '%s.gitMinor=%s' " \
      "$f" "$K8S_VERSION" "$f" "$major" "$f" "$minor"
    printf -- "-X '%s.gitTreeState=clean' -X '%s.buildDate=1970-01-01T00:00:00Z' " "$f" "$f"
  done
}

# build <name> <version> <module dir> <package> [extra ldflags]
# A stamp file next to the binary records the version it was built from, so
# bumping etcd or helm alone rebuilds just that binary.
build() {
  local name=$1 version=$2 dir=$3 pkg=$4 extra=${5:-} out="$BIN_DIR/$1" start
  if [[ -x $out && "$(cat "$out.version" 2>/dev/null)" == "$version" ]]; then
    log "$name $version: cached"
    return
  fi
  log "$name $version: building ($pkg) ..."
  start=$SECONDS
  (cd "$dir" && go build -trimpath -tags notest -ldflags "-s -w $extra" -o "$out.tmp" "$pkg")
  mv -f "$out.tmp" "$out"
  echo "$version" >"$out.version"
  log "$name $version: built in $((SECONDS - start))s"
}

only=("$@")  # optional subset of binary names
want() { [[ ${#only[@]} -eq 0 ]] || [[ " ${only[*]} " == *" $1 "* ]]; }

kl="$(k8s_ldflags)"
for b in kubectl kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
  want "$b" && build "$b" "$K8S_VERSION" "$CLUSTER_DIR/tools" "k8s.io/kubernetes/cmd/$b" "$kl"
done
want etcd && build etcd "$ETCD_VERSION" "$CLUSTER_DIR/tools/etcd" go.etcd.io/etcd/server/v3 \
  "-X go.etcd.io/etcd/api/v3/version.GitSHA=release"
want helm && build helm "$HELM_VERSION" "$CLUSTER_DIR/tools/helm" helm.sh/helm/v3/cmd/helm \
  "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
# Only the kwok controller (the simulated node's kubelet), not kwokctl.
want kwok && build kwok "$KWOK_VERSION" "$CLUSTER_DIR/tools/kwok" sigs.k8s.io/kwok/cmd/kwok
log "binaries ready in $BIN_DIR"
