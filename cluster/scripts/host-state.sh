#!/usr/bin/env bash
# host-state.sh save|restore
# The kubelet, kube-proxy and the CNI bridge plugin change host sysctls and add
# iptables chains, and the kubelet creates a few fixed host paths. `save`
# records the host as it was before the cluster started (once: a second save
# keeps the first snapshot); `restore` puts it back and forgets the snapshot.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root

# Everything any node component may write (see kubelet's setupKernelTunables,
# kube-proxy's conntrack/route_localnet settings, the bridge plugin's ip_forward).
SYSCTLS=(
  net.ipv4.ip_forward net.ipv6.conf.all.forwarding
  net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.bridge.bridge-nf-call-arptables
  vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes
  net.ipv4.conf.all.route_localnet net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait
  net.netfilter.nf_conntrack_tcp_be_liberal
)
# Host paths the node writes outside its own directories (the kubelet hardcodes
# /var/lib/kubelet/device-plugins and /var/log/containers; libcni caches in
# /var/lib/cni; containerd 1.6 puts shim sockets in /run/containerd/s); removed
# at restore unless they existed before.
HOST_PATHS=(/var/log/containers /var/lib/cni /var/lib/kubelet /usr/libexec/kubernetes
  /run/containerd)
IPT=(iptables ip6tables)

save() {
  [[ -e $SAVED_DIR/complete ]] && return 0
  rm -rf "$SAVED_DIR"
  mkdir -p "$SAVED_DIR"
  local s p t
  for s in "${SYSCTLS[@]}"; do
    [[ -e /proc/sys/${s//.//} ]] && echo "$s=$(sysctl -n "$s")"
  done >"$SAVED_DIR/sysctl"
  for t in "${IPT[@]}"; do "$t-save" >"$SAVED_DIR/$t"; done
  for p in "${HOST_PATHS[@]}"; do [[ -e $p ]] && echo "$p"; done >"$SAVED_DIR/existing-paths"
  touch "$SAVED_DIR/complete"
  log "host state saved in $SAVED_DIR"
}

# Tables (filter, nat, ...) listed in an iptables-save dump.
tables_in() { sed -n 's/^\*//p' "$1"; }

restore_iptables() { # <iptables|ip6tables>
  local t=$1 saved="$SAVED_DIR/$1" table family=ip
  [[ $t == ip6tables ]] && family=ip6
  [[ -f $saved ]] || return 0
  # Put back the tables that existed, exactly as they were.
  [[ -s $saved ]] && "$t-restore" <"$saved"
  # Tables that only the cluster created: empty them, and with the nftables
  # backend delete them, so `nft list ruleset` shows nothing of ours.
  for table in $("$t-save" | sed -n 's/^\*//p'); do
    tables_in "$saved" | grep -qx "$table" && continue
    "$t" -t "$table" -F
    "$t" -t "$table" -X
    if "$t" --version | grep -q nf_tables; then
      nft delete table "$family" "$table" 2>/dev/null || true
    fi
  done
}

restore() {
  [[ -d $SAVED_DIR ]] || return 0
  local line p
  restore_iptables iptables
  restore_iptables ip6tables
  if [[ -f $SAVED_DIR/sysctl ]]; then
    while IFS= read -r line; do
      sysctl -q -w "$line" >/dev/null || log "warning: could not restore $line"
    done <"$SAVED_DIR/sysctl"
  fi
  # Our entries in shared host paths: container log links, CNI result cache.
  [[ -d /var/log/containers ]] \
    && find /var/log/containers -maxdepth 1 -type l -lname "$POD_LOGS_DIR/*" -delete
  rm -f /var/lib/cni/results/flux-e2e-*
  if [[ -f $SAVED_DIR/existing-paths ]]; then
    for p in "${HOST_PATHS[@]}"; do
      grep -qx "$p" "$SAVED_DIR/existing-paths" || rm -rf "$p"
    done
  fi
  rm -rf "$SAVED_DIR"
  log "host sysctls, iptables and paths restored"
}

case "${1:-}" in
  save) save ;;
  restore) restore ;;
  *) die "usage: $0 save|restore" ;;
esac
