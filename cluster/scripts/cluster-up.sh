#!/usr/bin/env bash
# Starts the single-node e2e cluster (or reuses a healthy running one) and
# prints the kubeconfig path. Cold: installs packages and builds binaries.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root
take_lock
started=$SECONDS

healthy() {
  local d
  for d in "${DAEMONS[@]}"; do daemon_pid "$d" >/dev/null || return 1; done
  "$CLUSTER_DIR/scripts/net-guard.sh" check 2>/dev/null || return 1
  kctl get --raw /readyz >/dev/null 2>&1 || return 1
  node_ready
}

# Preconditions this node design relies on, checked up front with clear errors.
grep -q ' /sys/fs/cgroup/memory cgroup\| /sys/fs/cgroup cgroup2' /proc/mounts \
  || die "no memory cgroup mounted at /sys/fs/cgroup"
[[ -d /proc/sys/net/bridge ]] || die "kernel lacks br_netfilter (net.bridge sysctls)"
grep -qw overlay /proc/filesystems || die "kernel lacks overlayfs"

"$CLUSTER_DIR/scripts/install-host-packages.sh"
"$CLUSTER_DIR/scripts/build-binaries.sh"
pause_tar=$("$CLUSTER_DIR/scripts/build-pause-image.sh")

# The simulated node's kwok (not one of DAEMONS: a dead kwok is restarted on
# its own, never the cluster). It runs under our lock.
sim_node_up() { FLUX_E2E_LOCKED=1 "$CLUSTER_DIR/scripts/sim-node.sh" up; }

if [[ -f $KUBECONFIG_PATH ]] && healthy; then
  log "cluster already running and healthy"
  sim_node_up
  echo "$KUBECONFIG_PATH"
  exit 0
fi
# Anything half-started or left from a crash or reboot: clean it up first.
if [[ -d $STATE_DIR || -d /var/lib/flux-e2e || -d /run/flux-e2e ]]; then
  log "stale cluster state found: tearing it down first"
  FLUX_E2E_LOCKED=1 "$CLUSTER_DIR/scripts/cluster-down.sh"
fi

for port in 2379 2380 "$API_PORT" 10248 10250 10257 10259; do
  ! ss -Hltn "sport = :$port" | grep -q . || die "port $port is already in use on this host"
done

# Record the host before anything changes it, then guard the network before
# any cluster process exists.
"$CLUSTER_DIR/scripts/host-state.sh" save
"$CLUSTER_DIR/scripts/net-guard.sh" up
"$CLUSTER_DIR/scripts/gen-certs.sh"
"$CLUSTER_DIR/scripts/render-configs.sh"
mkdir -p "$ETCD_DATA" "$CONTAINERD_ROOT" "$CONTAINERD_STATE" "$KUBELET_ROOT" "$POD_LOGS_DIR" \
  "$CNI_IPAM_DIR"
chmod 700 "$ETCD_DATA"

# containerd is independent of the control plane: start it first, in parallel.
start_cluster_daemon containerd
start_cluster_daemon etcd
wait_for "etcd health" 60 etcd etcd_healthy
start_cluster_daemon kube-apiserver
wait_for "kube-apiserver /readyz" 120 kube-apiserver kctl get --raw /readyz
start_cluster_daemon kube-controller-manager
start_cluster_daemon kube-scheduler

wait_for "containerd socket" 60 containerd ctr_ version
# The sandbox image must be present before the kubelet runs a pod: no registry.
ctr_ images import --all-platforms "$pause_tar" >/dev/null
log "imported $PAUSE_IMAGE into containerd"

start_cluster_daemon kubelet
start_cluster_daemon kube-proxy

wait_for "node $NODE_NAME Ready" 120 kubelet node_ready
wait_for "service account default/default" 60 kube-controller-manager \
  kctl -n default get serviceaccount default
sim_node_up
log "cluster ready in $((SECONDS - started))s; kubeconfig: $KUBECONFIG_PATH"
echo "$KUBECONFIG_PATH"
