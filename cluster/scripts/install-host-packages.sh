#!/usr/bin/env bash
# Installs the Debian packages a node needs (containerd, runc, CNI plugins,
# iptables/nftables for kube-proxy and the network guard, podman + debootstrap
# for images). Does nothing when they are all present, so warm starts stay fast.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root

pkgs=(containerd runc containernetworking-plugins podman debootstrap nftables iptables
  conntrack iproute2 kmod openssl gcc libc6-dev procps util-linux)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get: install them"
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # If the package starts a system containerd, it is left alone: ours has its
  # own socket, root and state directories.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Tested versions are recorded in versions.env; a different build still works
# in general, so only warn. containerd must be 1.x or 2.x with CRI v1.
check() { # <package> <tested version>
  local have
  have=$(dpkg-query -W -f='${Version}' "$1")
  [[ $have == "$2" ]] || log "note: $1 is $have (tested with $2)"
}
check containerd "$CONTAINERD_DEB_VERSION"
check runc "$RUNC_DEB_VERSION"
check containernetworking-plugins "$CNI_PLUGINS_DEB_VERSION"
check podman "$PODMAN_DEB_VERSION"
[[ -x $CNI_BIN_DIR/bridge && -x $CNI_BIN_DIR/host-local && -x $CNI_BIN_DIR/loopback ]] \
  || die "CNI plugins not found in $CNI_BIN_DIR"
