#!/usr/bin/env bash
# Prints KEY=VALUE facts the e2e tests need (paths, image, network ranges), so
# the tests and the scripts share one source of truth. Needs no root.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
if [[ -n ${FLUX_E2E_KUBECONFIG:-} ]]; then
  echo "LOCAL=0"
  echo "KUBECONFIG=$FLUX_E2E_KUBECONFIG"
  echo "KUBECTL=${FLUX_E2E_KUBECTL:-$(command -v kubectl || echo "$BIN_DIR/kubectl")}"
else
  echo "LOCAL=1"
  echo "KUBECONFIG=$KUBECONFIG_PATH"
  echo "KUBECTL=${FLUX_E2E_KUBECTL:-$BIN_DIR/kubectl}"
fi
echo "IMAGE=${FLUX_E2E_IMAGE:-$RUNTIME_IMAGE}"
echo "NODE_NAME=$NODE_NAME"
echo "BRIDGE=$BRIDGE"
echo "BRIDGE_IP=$BRIDGE_IP"
echo "POD_CIDR=$POD_CIDR"
echo "SERVICE_CIDR=$SERVICE_CIDR"
echo "NFT_TABLE=$NFT_TABLE"
echo "SIM_NODE_NAME=$SIM_NODE_NAME"
echo "SIM_POD_CIDR=$SIM_POD_CIDR"
