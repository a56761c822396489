# shellcheck shell=bash disable=SC2034  # variables are used by the sourcing scripts
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

# The simulated node (scripts/sim-node.sh): a fake node run by the kwok
# controller, where pods complete without containers. Its pod IPs and node IP
# lie in a range no interface has, blackholed and dropped by net-guard.sh.
SIM_NODE_NAME=flux-sim
SIM_GUARD_CIDR=10.213.128.0/17
SIM_POD_CIDR=10.213.128.0/18
SIM_NODE_IP=10.213.255.254
# How long a simulated pod runs (ms) before it completes; the pod annotation
# flux.dev/simulated-duration overrides it per pod.
SIM_RUN_MS=${FLUX_E2E_SIM_RUN_MS:-200}

# Runtime directories of this node, kept apart from any system default.
CONTAINERD_ROOT=/var/lib/flux-e2e/containerd
CONTAINERD_STATE=/run/flux-e2e/containerd
CONTAINERD_SOCK=/run/flux-e2e/containerd/containerd.sock
KUBELET_ROOT=/var/lib/flux-e2e/kubelet
CNI_CONF_DIR="$STATE_DIR/cni/net.d"
CNI_BIN_DIR=/usr/lib/cni
CNI_IPAM_DIR=/var/lib/flux-e2e/cni
ETCD_DATA="$STATE_DIR/etcd"
POD_LOGS_DIR=/var/lib/flux-e2e/pod-logs

log() { printf '[flux-e2e %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_root() {
  [[ $EUID -eq 0 ]] || die "must run as root (it configures networking, mounts and containerd)"
}

# render_template <template in cluster/config> <output> <VAR>...: replaces each
# @VAR@ with that shell variable's value; fails on any placeholder left.
render_template() {
  local text var tpl=$1 out=$2
  shift 2
  text=$(<"$CLUSTER_DIR/config/$tpl")
  for var in "$@"; do text=${text//@$var@/${!var}}; done
  [[ $text != *@[A-Z]*@* ]] || die "unrendered placeholder in $tpl"
  printf '%s\n' "$text" >"$out"
}

# write_kubeconfig <output> <cert name in $STATE_DIR/pki> <user>: a
# self-contained kubeconfig (certs embedded) for the API server.
write_kubeconfig() {
  local pki="$STATE_DIR/pki"
  cat >"$1" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: flux-e2e
  cluster:
    server: https://$BRIDGE_IP:$API_PORT
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $3
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$2.crt")
    client-key-data: $(base64 -w0 <"$pki/$2.key")
contexts:
- name: flux-e2e
  context: {cluster: flux-e2e, user: $3}
current-context: flux-e2e
YAML
  chmod 600 "$1"
}

# kubectl against our cluster.
kctl() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_PATH" --cache-dir "$STATE_DIR/kube-cache" "$@"; }

# --- daemons -----------------------------------------------------------------
# Each daemon runs in its own session with its log in $LOG_DIR/<name>.log; its
# PID and executable are recorded in $PID_DIR/<name>.pid, so it is stopped by
# that PID alone (and a reused PID is never mistaken for it).
DAEMONS=(etcd kube-apiserver containerd kube-controller-manager kube-scheduler kubelet kube-proxy)

start_daemon() { # <name> <binary> [args...]
  local name=$1 bin
  bin=$(readlink -f "$2")
  shift 2
  mkdir -p "$LOG_DIR" "$PID_DIR"
  # In a non-interactive shell the subshell is no process-group leader, so
  # setsid execs in place and $! is the daemon's own PID.
  # fd 9 is the cluster lock: daemons must not inherit it.
  (exec setsid "$bin" "$@") >>"$LOG_DIR/$name.log" 2>&1 </dev/null 9>&- &
  printf '%s\n%s\n' "$!" "$bin" >"$PID_DIR/$name.pid"
  log "started $name (pid $!, log $LOG_DIR/$name.log)"
}

daemon_pid() { # <name>: prints the PID if that daemon is alive
  local f="$PID_DIR/$1.pid" pid exe
  [[ -f $f ]] || return 1
  { read -r pid && read -r exe; } <"$f" || return 1
  [[ -n $pid && "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$exe" ]] || return 1
  echo "$pid"
}

# True while the process exists and has not exited (a zombie waiting for PID 1
# to reap it counts as exited).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  [[ ${stat##*) } != Z* ]]
}

stop_daemon() { # <name> [seconds before SIGKILL]
  local name=$1 wait=${2:-15} pid i
  if pid=$(daemon_pid "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait * 10; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      log "$name did not stop in ${wait}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$PID_DIR/$name.pid"
}

# start_cluster_daemon <one of DAEMONS>: starts it with this cluster's flags.
# The one place each daemon's command line is written: cluster-up.sh starts them
# all, restart-daemon.sh (the chaos tool) one at a time, the same way.
start_cluster_daemon() {
  local pki="$STATE_DIR/pki"
  case $1 in
    containerd)
      start_daemon containerd /usr/bin/containerd --config "$STATE_DIR/containerd.toml" ;;
    etcd)
      # On loopback only, plain HTTP (nothing else can reach it). No fsync:
      # the data is thrown away at cluster-down anyway.
      start_daemon etcd "$BIN_DIR/etcd" --name flux-e2e --data-dir "$ETCD_DATA" \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster flux-e2e=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
        --unsafe-no-fsync --log-level warn ;;
    kube-apiserver)
      # The requestheader flags only publish a client CA for the controller-manager
      # and scheduler's delegated authentication (no cert is issued for that name).
      start_daemon kube-apiserver "$BIN_DIR/kube-apiserver" \
        --etcd-servers http://127.0.0.1:2379 \
        --bind-address "$BRIDGE_IP" --advertise-address "$BRIDGE_IP" --secure-port "$API_PORT" \
        --endpoint-reconciler-type lease \
        --service-cluster-ip-range "$SERVICE_CIDR" \
        --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
        --client-ca-file "$pki/ca.crt" \
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
        --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
        --kubelet-certificate-authority "$pki/ca.crt" \
        --kubelet-preferred-address-types InternalIP \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
        --requestheader-client-ca-file "$pki/ca.crt" --requestheader-allowed-names front-proxy-client \
        --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
        --requestheader-extra-headers-prefix X-Remote-Extra- \
        --allow-privileged=false --profiling=false ;;
    kube-controller-manager)
      start_daemon kube-controller-manager "$BIN_DIR/kube-controller-manager" \
        --kubeconfig "$STATE_DIR/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$STATE_DIR/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$STATE_DIR/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
        --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
        --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
        --controllers '*,-nodeipam' --profiling=false ;;
    kube-scheduler)
      # The scheduler's client allows 50 requests/s by default; each pod costs a
      # binding and an Event, so bursts of task pods on the simulated node
      # (benchmarks/scale.py) would wait on that limit rather than on Flux. kwokctl's
      # --disable-qps-limits lifts it the same way.
      start_daemon kube-scheduler "$BIN_DIR/kube-scheduler" \
        --kubeconfig "$STATE_DIR/scheduler.kubeconfig" \
        --authentication-kubeconfig "$STATE_DIR/scheduler.kubeconfig" \
        --authorization-kubeconfig "$STATE_DIR/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --leader-elect=false --profiling=false \
        --kube-api-qps 500 --kube-api-burst 1000 ;;
    kubelet)
      start_daemon kubelet "$BIN_DIR/kubelet" --config "$STATE_DIR/kubelet.yaml" \
        --kubeconfig "$STATE_DIR/kubelet.kubeconfig" --node-ip "$BRIDGE_IP" \
        --hostname-override "$NODE_NAME" --root-dir "$KUBELET_ROOT" ;;
    kube-proxy)
      start_daemon kube-proxy "$BIN_DIR/kube-proxy" --config "$STATE_DIR/kube-proxy.yaml" ;;
    *) die "unknown daemon $1 (one of: ${DAEMONS[*]})" ;;
  esac
}

etcd_healthy() { curl -fsS http://127.0.0.1:2379/health; }
ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# PIDs of this cluster's kwok processes (scripts/sim-node.sh), found by their
# exact --config path whatever the pid file says: one left behind by a replaced
# binary or a lost pid file is still found.
kwok_pids() {
  local p args
  for p in /proc/[0-9]*; do
    { mapfile -d '' -t args <"$p/cmdline"; } 2>/dev/null || continue
    if [[ " ${args[*]} " == *" --config $STATE_DIR/kwok.yaml "* ]]; then echo "${p#/proc/}"; fi
  done
}

# wait_for <description> <timeout seconds> <log name or -> <command...>
# Polls the command until it succeeds; on timeout fails naming what it waited
# for and showing the end of the relevant log.
wait_for() {
  local what=$1 timeout=$2 logname=$3 deadline
  shift 3
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for $what"
      [[ $logname != - && -f $LOG_DIR/$logname.log ]] && tail -n 30 "$LOG_DIR/$logname.log" >&2
      die "timed out waiting for $what"
    fi
    sleep 0.5
  done
}

node_ready() {
  [[ "$(kctl get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

# Serialises cluster-up and cluster-down (e.g. parallel pytest sessions).
take_lock() {
  [[ -n ${FLUX_E2E_LOCKED:-} ]] && return 0  # the calling script holds it
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/cluster.lock"
  flock -w 1800 9 || die "could not lock $CACHE_ROOT/cluster.lock"
}

# --- podman --------------------------------------------------------------------
# podman with its own storage in the cache (images survive cluster-down; nothing
# under /var/lib/containers), cgroupfs and runc: what works on these machines.
PODMAN_ROOT="$CACHE_ROOT/podman"
podman_() {
  CONTAINERS_CONF="$CLUSTER_DIR/podman/containers.conf" podman \
    --root "$PODMAN_ROOT/storage" --runroot /run/flux-e2e-podman --storage-driver overlay \
    --cgroup-manager cgroupfs --runtime runc "$@"
}
