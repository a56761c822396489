#!/usr/bin/env bash
# Generates the cluster PKI with openssl into $STATE_DIR/pki (once; kept while
# the state directory exists): a CA, serving certs for the API server and the
# kubelet, client certs for each component and the admin, and the service
# account signing key. EC P-256 keys: fast to make and accepted everywhere.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PKI="$STATE_DIR/pki"
mkdir -p "$PKI"
chmod 700 "$PKI"
cd "$PKI"

newkey() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null; }

# sign <name> <subject> <extendedKeyUsage> [subjectAltName]
sign() {
  local name=$1 subj=$2 eku=$3 san=${4:-} ext
  newkey "$name"
  ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$eku"
  [[ -n $san ]] && ext+=$'\n'"subjectAltName=$san"
  openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
    -days 365 -extfile <(echo "$ext") -out "$name.crt" 2>/dev/null
  rm -f "$name.csr"
}

if ! [[ -s ca.crt && -s admin.crt && -s sa.key ]]; then
  log "generating certificates in $PKI"

  newkey ca
  openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=flux-e2e-ca" -out ca.crt \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

  sign apiserver "/CN=kube-apiserver" serverAuth \
    "IP:$BRIDGE_IP,IP:$API_SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # The API server calls the kubelet (logs, exec) with this identity.
  sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  sign kubelet-server "/CN=$NODE_NAME" serverAuth "IP:$BRIDGE_IP,DNS:$NODE_NAME"
  # Node authorizer + NodeRestriction identify the kubelet by this exact name.
  sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  sign controller-manager "/CN=system:kube-controller-manager" clientAuth
  sign scheduler "/CN=system:kube-scheduler" clientAuth
  # Bound to the system:node-proxier role by the default RBAC bindings.
  sign kube-proxy "/CN=system:kube-proxy" clientAuth
  sign admin "/O=system:masters/CN=flux-e2e-admin" clientAuth

  # Service account token signing key pair.
  newkey sa
  openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
  rm -f ca.srl
  chmod 600 ./*.key
fi

# The simulated node's kwok controller (scripts/sim-node.sh). Made on its own
# when missing, so a cluster started before it existed gets it at cluster-up.
if [[ ! -s kwok-controller.crt ]]; then
  sign kwok-controller "/CN=flux-e2e:kwok-controller" clientAuth
  rm -f ca.srl
  chmod 600 ./*.key
fi
