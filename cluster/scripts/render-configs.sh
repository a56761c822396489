#!/usr/bin/env bash
# Renders cluster/config/* templates (@VAR@ placeholders) and the kubeconfigs
# into $STATE_DIR. Idempotent.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# shellcheck disable=SC2034  # read by render through ${!var}
PKI="$STATE_DIR/pki"
mkdir -p "$STATE_DIR" "$CNI_CONF_DIR"

render() { # <template> <output>
  local text var
  text=$(<"$CLUSTER_DIR/config/$1")
  for var in CONTAINERD_ROOT CONTAINERD_STATE CONTAINERD_SOCK PAUSE_IMAGE CNI_BIN_DIR \
    CNI_CONF_DIR CNI_IPAM_DIR POD_LOGS_DIR KUBELET_ROOT BRIDGE BRIDGE_IP POD_CIDR \
    SERVICE_CIDR PKI STATE_DIR NODE_NAME; do
    text=${text//@$var@/${!var}}
  done
  [[ $text != *@[A-Z]*@* ]] || die "unrendered placeholder in $1"
  printf '%s\n' "$text" >"$2"
}
render containerd.toml "$STATE_DIR/containerd.toml"
render kubelet.yaml "$STATE_DIR/kubelet.yaml"
render kube-proxy.yaml "$STATE_DIR/kube-proxy.yaml"
render cni-bridge.conflist "$CNI_CONF_DIR/10-flux-e2e.conflist"

# Self-contained kubeconfigs (certs embedded) so they can be copied elsewhere.
write_kubeconfig "$KUBECONFIG_PATH" admin flux-e2e-admin
write_kubeconfig "$STATE_DIR/controller-manager.kubeconfig" controller-manager controller-manager
write_kubeconfig "$STATE_DIR/scheduler.kubeconfig" scheduler scheduler
write_kubeconfig "$STATE_DIR/kubelet.kubeconfig" kubelet kubelet
write_kubeconfig "$STATE_DIR/kube-proxy.kubeconfig" kube-proxy kube-proxy
write_kubeconfig "$STATE_DIR/kwok.kubeconfig" kwok-controller flux-e2e:kwok-controller
