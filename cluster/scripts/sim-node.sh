#!/usr/bin/env bash
# sim-node.sh up|down|check
# The simulated node: one fake node ($SIM_NODE_NAME) run by the kwok controller,
# a host process like the other daemons (log $LOG_DIR/kwok.log, pid
# $PID_DIR/kwok.pid). Pods that select it (nodeSelector type=kwok and the
# toleration for kwok.x-k8s.io/node=fake:NoSchedule) run without containers and
# complete as config/kwok.yaml says.
#  up     (cluster-up, with the API server running) reuses a healthy kwok, else
#         (re)starts it; creates the node if missing; waits until it is Ready.
#  down   stops kwok and deletes what `up` put in the cluster (cluster-down
#         only stops kwok: the rest goes with etcd and the state directory).
#  check  fails unless kwok runs and the node is Ready.
# kwok listens on no port (no nodePort/serverAddress in its config) and talks
# only to the API server; its pod IPs are in a range net-guard.sh blackholes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root
take_lock

KWOK_CONFIG="$STATE_DIR/kwok.yaml"
KWOK_KUBECONFIG="$STATE_DIR/kwok.kubeconfig"
# kwok reads ~/.kwok/kwok.yaml unless its work dir is elsewhere: keep it ours.
KWOK_WORKDIR="$STATE_DIR/kwok"

# Ready, and its lease renewed within the lease's duration (so a kwok runs it
# now: a node stays Ready for a while after its kwok is gone).
sim_node_ready() {
  local renewed duration
  [[ "$(kctl get node "$SIM_NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]] \
    || return 1
  # (jsonpath prints no final newline, so read reports EOF: its status is moot)
  read -r renewed duration < <(kctl -n kube-node-lease get lease "$SIM_NODE_NAME" \
    -o jsonpath='{.spec.renewTime} {.spec.leaseDurationSeconds}' 2>/dev/null) || true
  [[ -n $renewed && -n $duration ]] || return 1
  (($(date +%s) - $(date -d "$renewed" +%s) <= duration))
}

# Any kwok of ours that its pid file does not name (a binary rebuilt in place,
# a lost pid file): stopped by PID before another starts.
stop_stray_kwoks() {
  local pid
  for pid in $(kwok_pids); do
    log "stopping stray kwok (pid $pid)"
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$PID_DIR/kwok.pid"
}

# Fails if kwok listens on anything but loopback (it should listen on nothing).
check_no_listeners() {
  local pid=$1 addr
  while read -r addr; do
    case $addr in
      127.*:* | \[::1\]:*) ;;
      *) die "kwok (pid $pid) listens on $addr" ;;
    esac
  done < <(ss -Hltnup 2>/dev/null | grep -F "pid=$pid," | awk '{print $5}')
}

up() {
  local pid
  [[ -x $BIN_DIR/kwok && "$(cat "$BIN_DIR/kwok.version" 2>/dev/null)" == "$KWOK_VERSION" ]] \
    || die "kwok $KWOK_VERSION is not built: run cluster/scripts/build-binaries.sh kwok"
  kctl get --raw /readyz >/dev/null 2>&1 || die "the API server is not ready (make cluster-up)"
  "$CLUSTER_DIR/scripts/net-guard.sh" sim
  # Its client certificate and kubeconfig (a cluster started before the
  # simulated node existed has neither).
  "$CLUSTER_DIR/scripts/gen-certs.sh"
  [[ -s $KWOK_KUBECONFIG ]] || write_kubeconfig "$KWOK_KUBECONFIG" kwok-controller flux-e2e:kwok-controller
  kctl apply --server-side --force-conflicts --field-manager flux-e2e \
    -f "$CLUSTER_DIR/config/kwok-rbac.yaml" >/dev/null

  mkdir -p "$KWOK_WORKDIR"
  render_template kwok.yaml "$KWOK_CONFIG.new" SIM_POD_CIDR SIM_NODE_IP SIM_RUN_MS KWOK_VERSION
  if pid=$(daemon_pid kwok); then
    if cmp -s "$KWOK_CONFIG.new" "$KWOK_CONFIG"; then
      log "kwok already running (pid $pid)"
    else
      log "kwok configuration changed: restarting it"
      stop_daemon kwok
    fi
  fi
  mv -f "$KWOK_CONFIG.new" "$KWOK_CONFIG"
  if ! daemon_pid kwok >/dev/null; then
    stop_stray_kwoks
    # The lease of a kwok that is gone would keep the node unmanaged until
    # it expires (40 s): nobody else holds it, so drop it.
    kctl -n kube-node-lease delete lease "$SIM_NODE_NAME" --ignore-not-found >/dev/null
    KWOK_WORKDIR="$KWOK_WORKDIR" start_daemon kwok "$BIN_DIR/kwok" \
      --kubeconfig "$KWOK_KUBECONFIG" --config "$KWOK_CONFIG"
  fi

  # The node: created once; re-created if someone changed what marks it fake.
  render_template kwok-node.yaml "$STATE_DIR/kwok-node.yaml" SIM_NODE_NAME SIM_POD_CIDR
  local marks='{.metadata.annotations.kwok\.x-k8s\.io/node}/{.metadata.labels.type}/{.spec.taints[?(@.key=="kwok.x-k8s.io/node")].effect}'
  case "$(kctl get node "$SIM_NODE_NAME" -o jsonpath="$marks" 2>/dev/null || echo missing)" in
    fake/kwok/NoSchedule) ;;
    missing) kctl create -f "$STATE_DIR/kwok-node.yaml" >/dev/null ;;
    *)
      log "node $SIM_NODE_NAME lost its kwok annotation, label or taint: re-creating it"
      kctl delete node "$SIM_NODE_NAME" --wait=true >/dev/null
      kctl create -f "$STATE_DIR/kwok-node.yaml" >/dev/null
      ;;
  esac
  local deadline=$((SECONDS + 60))
  until sim_node_ready; do
    if ! pid=$(daemon_pid kwok) || ((SECONDS >= deadline)); then
      tail -n 30 "$LOG_DIR/kwok.log" >&2
      die "kwok did not make node $SIM_NODE_NAME Ready (log: $LOG_DIR/kwok.log)"
    fi
    sleep 0.5
  done
  pid=$(daemon_pid kwok) || { tail -n 30 "$LOG_DIR/kwok.log" >&2; die "kwok exited"; }
  check_no_listeners "$pid"
  log "simulated node $SIM_NODE_NAME Ready (kwok pid $pid, pods run ${SIM_RUN_MS}ms)"
}

down() {
  stop_daemon kwok
  rm -f "$PID_DIR/kwok.pid"
  # With the cluster still up, take the node and kwok's RBAC out of it (pods
  # bound to the node are then deleted by the pod garbage collector).
  if [[ -f $KUBECONFIG_PATH ]] && kctl get --raw /readyz >/dev/null 2>&1; then
    kctl delete node "$SIM_NODE_NAME" --ignore-not-found --wait=false >/dev/null
    kctl -n kube-node-lease delete lease "$SIM_NODE_NAME" --ignore-not-found >/dev/null
    kctl delete --ignore-not-found -f "$CLUSTER_DIR/config/kwok-rbac.yaml" >/dev/null
  fi
  rm -rf "$KWOK_CONFIG" "$STATE_DIR/kwok-node.yaml" "$KWOK_WORKDIR"
  log "simulated node $SIM_NODE_NAME removed"
}

check() {
  local pid
  pid=$(daemon_pid kwok) || die "kwok is not running"
  sim_node_ready || die "node $SIM_NODE_NAME is not Ready"
  "$CLUSTER_DIR/scripts/net-guard.sh" sim
  check_no_listeners "$pid"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  check) check ;;
  *) die "usage: $0 up|down|check" ;;
esac
