#!/usr/bin/env bash
# Stops the e2e cluster and leaves nothing behind: processes (by recorded PID),
# containers, mounts, cgroups, the bridge, routes, the nft table, and the host
# sysctls/iptables/paths as saved at cluster-up. Safe to run at any time.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root
take_lock

ctr_() { timeout 30 ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# 1. Stop the node agents first so nothing restarts pods behind our back
#    (kwok, the simulated node's, too: its node and pods go with etcd).
stop_daemon kwok
stop_daemon kube-proxy
stop_daemon kubelet

# 2. Kill and delete every container through containerd, which also ends
#    their shims cleanly.
if daemon_pid containerd >/dev/null; then
  tasks=$(ctr_ tasks ls -q 2>/dev/null || true)
  for t in $tasks; do ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
  for t in $tasks; do ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true; done
  mapfile -t containers < <(ctr_ containers ls -q 2>/dev/null || true)
  ((${#containers[@]} == 0)) || ctr_ containers delete "${containers[@]}" >/dev/null 2>&1 || true
fi
stop_daemon containerd

# 3. Fallback for a crashed containerd: shims serving our socket, a kwok its
#    pid file lost, and any process still in the kubelet's pod cgroups. Found
#    by exact match, killed by PID.
for p in /proc/[0-9]*; do
  if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "-address $CONTAINERD_SOCK "; then
    kill -KILL "${p#/proc/}" 2>/dev/null || true
  fi
done
for p in $(kwok_pids); do kill -KILL "$p" 2>/dev/null || true; done
find /sys/fs/cgroup/*/kubepods -name cgroup.procs 2>/dev/null | while read -r procs; do
  while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$procs"
done

# 4. The control plane.
stop_daemon kube-scheduler
stop_daemon kube-controller-manager
stop_daemon kube-apiserver
stop_daemon etcd

# 5. Mounts under our directories (pod volumes, rootfs overlays, shm, netns),
#    deepest first.
for root in /var/lib/flux-e2e /run/flux-e2e "$STATE_DIR"; do
  awk -v r="$root/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "warning: could not unmount $m"
  done
done

# 6. The kubelet's pod cgroups (cgroupfs driver: /kubepods in each hierarchy).
for dir in /sys/fs/cgroup/*/kubepods; do
  [[ -d $dir ]] && find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null
done
true

# 7. Network guard and host state, then our directories.
"$CLUSTER_DIR/scripts/net-guard.sh" down
"$CLUSTER_DIR/scripts/host-state.sh" restore
if [[ -d $LOG_DIR ]]; then
  # Keep the last run's logs for post-mortems (in the cache, not on the host paths).
  rm -rf "$CACHE_ROOT/last-logs"
  mv "$LOG_DIR" "$CACHE_ROOT/last-logs"
fi
rm -rf /var/lib/flux-e2e /run/flux-e2e "$STATE_DIR"
log "cluster down (logs of the last run: $CACHE_ROOT/last-logs)"
