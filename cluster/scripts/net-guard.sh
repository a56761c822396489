#!/usr/bin/env bash
# net-guard.sh up|down|check
# Network safety: no packet from the cluster may leave this machine.
#  - a dedicated bridge with a small private subnet; its address is the node IP
#    and the API server address, so pods need no route off the bridge;
#  - blackhole routes for the pod and service ranges, so nothing addressed to
#    them is ever routed out of the host (the bridge's own route wins while up);
#  - an nftables table that drops all forwarded traffic (the host never routes
#    for pods) and any packet with a pod/service source leaving by an interface
#    other than the bridge or loopback.
# The simulated node's range ($SIM_GUARD_CIDR: its fake pod and node IPs, which
# exist on no interface) is blackholed and guarded the same way.
# Pods get no default route: the CNI config only adds a route to the service range.
# `up` runs before any cluster process starts; `down` after they have all stopped.
# `sim` (re)applies and checks the simulated node's guard alone (sim-node.sh up),
# for a cluster whose guard went up before that range was added.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root

nft_rules() {
  cat <<NFT
table inet $NFT_TABLE {
  set guarded4 {
    type ipv4_addr; flags interval
    elements = { $POD_CIDR, $SERVICE_CIDR, $SIM_GUARD_CIDR }
  }
  chain forward {
    type filter hook forward priority filter - 10; policy accept
    # Pod-to-pod frames on the bridge pass here when br_netfilter is on.
    iifname "$BRIDGE" oifname "$BRIDGE" accept
    counter drop comment "flux-e2e: this host routes nothing"
  }
  chain postrouting {
    type filter hook postrouting priority filter - 10; policy accept
    oifname != { "$BRIDGE", "lo" } ip saddr @guarded4 counter drop comment "flux-e2e: pod/service source off-host"
    oifname != { "$BRIDGE", "lo" } ip daddr @guarded4 counter drop comment "flux-e2e: pod/service destination off-bridge"
  }
}
NFT
}

up() {
  # The nft table first: it guards everything that follows.
  nft list table inet "$NFT_TABLE" >/dev/null 2>&1 || nft -f <(nft_rules)
  ip route replace blackhole "$POD_CIDR" metric "$BLACKHOLE_METRIC"
  ip route replace blackhole "$SERVICE_CIDR" metric "$BLACKHOLE_METRIC"
  sim_up
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    # No IPv6 on the bridge: pods are IPv4-only and need no link-local router.
    sysctl -q -w "net.ipv6.conf.$BRIDGE.disable_ipv6=1" || true
  fi
  ip addr replace "$BRIDGE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # kube-proxy needs bridged pod traffic to pass through iptables (service DNAT).
  sysctl -q -w net.bridge.bridge-nf-call-iptables=1
  check
  sim_check
  log "network guard up: bridge $BRIDGE $BRIDGE_IP, blackholes $POD_CIDR $SERVICE_CIDR $SIM_GUARD_CIDR, nft $NFT_TABLE"
}

# The simulated node's range: in the nft set (adding an element already there
# is a no-op) and blackholed. Needs the nft table.
sim_up() {
  nft add element inet "$NFT_TABLE" guarded4 "{ $SIM_GUARD_CIDR }"
  ip route replace blackhole "$SIM_GUARD_CIDR" metric "$BLACKHOLE_METRIC"
}

sim_check() {
  [[ "$(nft list set inet "$NFT_TABLE" guarded4 2>/dev/null)" == *"$SIM_GUARD_CIDR"* ]] \
    || die "nft set guarded4 lacks $SIM_GUARD_CIDR"
  [[ -n "$(ip route show type blackhole "$SIM_GUARD_CIDR")" ]] \
    || die "blackhole route for $SIM_GUARD_CIDR missing"
  # Nothing may hold an address there.
  [[ -z "$(ip -4 -o addr show to "$SIM_GUARD_CIDR")" ]] \
    || die "an interface has an address in $SIM_GUARD_CIDR"
}

down() {
  local veth
  # Host ends of any pod veths still attached (normally gone with their netns).
  for veth in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link delete "$veth" 2>/dev/null || true
  done
  ip link delete "$BRIDGE" 2>/dev/null || true
  ip route delete blackhole "$POD_CIDR" metric "$BLACKHOLE_METRIC" 2>/dev/null || true
  ip route delete blackhole "$SERVICE_CIDR" metric "$BLACKHOLE_METRIC" 2>/dev/null || true
  ip route delete blackhole "$SIM_GUARD_CIDR" metric "$BLACKHOLE_METRIC" 2>/dev/null || true
  nft delete table inet "$NFT_TABLE" 2>/dev/null || true
}

# Fails unless every guard is in place.
check() {
  local cidr
  nft list table inet "$NFT_TABLE" >/dev/null 2>&1 || die "nft table inet $NFT_TABLE missing"
  for cidr in "$POD_CIDR" "$SERVICE_CIDR"; do
    ip route show type blackhole "$cidr" | grep -q . || die "blackhole route for $cidr missing"
  done
  ip -4 addr show dev "$BRIDGE" 2>/dev/null | grep -q "inet $BRIDGE_IP/" \
    || die "bridge $BRIDGE without $BRIDGE_IP"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  check) check ;;
  sim)
    nft list table inet "$NFT_TABLE" >/dev/null 2>&1 || die "nft table inet $NFT_TABLE missing"
    sim_up
    sim_check
    ;;
  *) die "usage: $0 up|down|check|sim" ;;
esac
