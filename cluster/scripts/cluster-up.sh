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
PKI="$STATE_DIR/pki"
mkdir -p "$ETCD_DATA" "$CONTAINERD_ROOT" "$CONTAINERD_STATE" "$KUBELET_ROOT" "$POD_LOGS_DIR" \
  "$CNI_IPAM_DIR"
chmod 700 "$ETCD_DATA"

# containerd is independent of the control plane: start it first, in parallel.
start_daemon containerd /usr/bin/containerd --config "$STATE_DIR/containerd.toml"

# etcd on loopback only, plain HTTP (nothing else can reach it). No fsync:
# the data is thrown away at cluster-down anyway.
start_daemon etcd "$BIN_DIR/etcd" --name flux-e2e --data-dir "$ETCD_DATA" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster flux-e2e=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
  --unsafe-no-fsync --log-level warn
wait_for "etcd health" 60 etcd curl -fsS http://127.0.0.1:2379/health

# The requestheader flags only publish a client CA for the controller-manager
# and scheduler's delegated authentication (no cert is issued for that name).
start_daemon kube-apiserver "$BIN_DIR/kube-apiserver" \
  --etcd-servers http://127.0.0.1:2379 \
  --bind-address "$BRIDGE_IP" --advertise-address "$BRIDGE_IP" --secure-port "$API_PORT" \
  --endpoint-reconciler-type lease \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --client-ca-file "$PKI/ca.crt" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$PKI/ca.crt" \
  --kubelet-preferred-address-types InternalIP \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --requestheader-client-ca-file "$PKI/ca.crt" --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --allow-privileged=false --profiling=false
wait_for "kube-apiserver /readyz" 120 kube-apiserver kctl get --raw /readyz

start_daemon kube-controller-manager "$BIN_DIR/kube-controller-manager" \
  --kubeconfig "$STATE_DIR/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$STATE_DIR/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$STATE_DIR/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --controllers '*,-nodeipam' --profiling=false
# The scheduler's client allows 50 requests/s by default; each pod costs a
# binding and an Event, so bursts of task pods on the simulated node
# (benchmarks/scale.py) would wait on that limit rather than on Flux. kwokctl's
# --disable-qps-limits lifts it the same way.
start_daemon kube-scheduler "$BIN_DIR/kube-scheduler" \
  --kubeconfig "$STATE_DIR/scheduler.kubeconfig" \
  --authentication-kubeconfig "$STATE_DIR/scheduler.kubeconfig" \
  --authorization-kubeconfig "$STATE_DIR/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --profiling=false \
  --kube-api-qps 500 --kube-api-burst 1000

ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
wait_for "containerd socket" 60 containerd ctr_ version
# The sandbox image must be present before the kubelet runs a pod: no registry.
ctr_ images import --all-platforms "$pause_tar" >/dev/null
log "imported $PAUSE_IMAGE into containerd"

start_daemon kubelet "$BIN_DIR/kubelet" --config "$STATE_DIR/kubelet.yaml" \
  --kubeconfig "$STATE_DIR/kubelet.kubeconfig" --node-ip "$BRIDGE_IP" \
  --hostname-override "$NODE_NAME" --root-dir "$KUBELET_ROOT"
start_daemon kube-proxy "$BIN_DIR/kube-proxy" --config "$STATE_DIR/kube-proxy.yaml"

wait_for "node $NODE_NAME Ready" 120 kubelet node_ready
wait_for "service account default/default" 60 kube-controller-manager \
  kctl -n default get serviceaccount default
sim_node_up
log "cluster ready in $((SECONDS - started))s; kubeconfig: $KUBECONFIG_PATH"
echo "$KUBECONFIG_PATH"
