#!/usr/bin/env bash
# restart-daemon.sh <daemon>...: stops each named cluster daemon (SIGTERM, then
# SIGKILL after 15 s) and starts it again exactly as cluster-up.sh does, then
# waits until the cluster serves again. A daemon that was not running is
# started. Used by the chaos tool (benchmarks/chaos.py) as a fault; any
# daemon it names is running again when this script exits, whatever happened.
#
#   cluster/scripts/restart-daemon.sh kube-apiserver
#   cluster/scripts/restart-daemon.sh etcd kube-apiserver   # stopped together, started in order
#   cluster/scripts/restart-daemon.sh --missing             # starts those not running; stops none
set -euo pipefail
source "$(dirname "$0")/lib.sh"
(($# > 0)) || die "usage: $0 <daemon>... | --missing (daemons: ${DAEMONS[*]})"
if [[ $1 != --missing ]]; then
  for name in "$@"; do
    [[ " ${DAEMONS[*]} " == *" $name "* ]] || die "unknown daemon $name (one of: ${DAEMONS[*]})"
  done
fi
need_root
take_lock
if [[ $1 == --missing ]]; then
  started=0
  for name in "${DAEMONS[@]}"; do
    if ! daemon_pid "$name" >/dev/null; then
      log "$name is not running"
      start_cluster_daemon "$name"
      started=1
    fi
  done
  ((started == 0)) || wait_for "kube-apiserver /readyz" 120 kube-apiserver kctl get --raw /readyz
  exit 0
fi

restore() {
  local name
  for name in "${DAEMONS[@]}"; do  # cluster-up's order: etcd before the API server
    [[ " $* " == *" $name "* ]] || continue
    daemon_pid "$name" >/dev/null || start_cluster_daemon "$name"
  done
}
trap 'restore "$@"' EXIT

# Stopped in the reverse of cluster-up's order: the API server before etcd (it
# would wait for etcd through its whole shutdown otherwise).
for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
  if [[ " $* " == *" ${DAEMONS[i]} "* ]]; then stop_daemon "${DAEMONS[i]}"; fi
done
restore "$@"
trap - EXIT
for name in "$@"; do
  case $name in
    etcd) wait_for "etcd health" 60 etcd etcd_healthy ;;
    kube-apiserver) wait_for "kube-apiserver /readyz" 120 kube-apiserver kctl get --raw /readyz ;;
    containerd) wait_for "containerd socket" 60 containerd ctr_ version ;;
    kubelet) wait_for "node $NODE_NAME Ready" 120 kubelet node_ready ;;
  esac
done
log "restarted: $*"
