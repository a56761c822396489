# Shared settings for the cluster scripts. Source it; do not run it.
# Everything a script needs to know about paths, versions and addresses is here
# so that cluster-up, cluster-down and the tests agree.

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$CLUSTER_DIR/.." && pwd)"
# shellcheck source=../versions.env
source "$CLUSTER_DIR/versions.env"

# Binaries and images are cached outside the repo, keyed by version, so a
# second run is fast and a fresh clone on the same machine reuses them.
CACHE_ROOT="${FLUX_E2E_CACHE:-$HOME/.cache/flux-e2e}"
CACHE_DIR="$CACHE_ROOT/$K8S_VERSION"
BIN_DIR="$CACHE_DIR/bin"
IMAGE_CACHE="$CACHE_ROOT/images"
# Live cluster state: certs, configs, data dirs, logs, pids, saved host state.
STATE_DIR="${FLUX_E2E_STATE:-$CACHE_ROOT/state}"
KUBECONFIG_PATH="$STATE_DIR/kubeconfig"
LOG_DIR="$STATE_DIR/logs"
PID_DIR="$STATE_DIR/pids"
SAVED_DIR="$STATE_DIR/saved"

# Network: one bridge with small private ranges that no other interface here
# uses. The bridge address is the node IP and the API server address, so pods
# reach the API server without any route off the bridge.
BRIDGE=flux-br0
POD_CIDR=10.213.0.0/24
BRIDGE_IP=10.213.0.1
SERVICE_CIDR=10.213.1.0/24
API_SERVICE_IP=10.213.1.1
API_PORT=6443
NODE_NAME=flux-e2e
NFT_TABLE=flux_e2e
# Metric for the blackhole routes: higher than the bridge's connected route, so
# the bridge wins while it is up and the blackhole catches everything else.
BLACKHOLE_METRIC=4242

# Runtime directories of this node, kept apart from any system default.
CONTAINERD_ROOT=/var/lib/flux-e2e/containerd
CONTAINERD_STATE=/run/flux-e2e/containerd
CONTAINERD_SOCK=/run/flux-e2e/containerd/containerd.sock
KUBELET_ROOT=/var/lib/flux-e2e/kubelet
CNI_CONF_DIR="$STATE_DIR/cni/net.d"
CNI_BIN_DIR=/usr/lib/cni
CNI_IPAM_DIR=/var/lib/flux-e2e/cni
ETCD_DATA="$STATE_DIR/etcd"

log() { printf '[flux-e2e %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_root() {
  [[ $EUID -eq 0 ]] || die "must run as root (it configures networking, mounts and containerd)"
}

# kubectl against our cluster.
kctl() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }
