#!/usr/bin/env bash
# Installs what the host-cluster e2e needs from Debian: containerd, runc, the CNI plugins, iptables and the tools
# kubeadm's preflight and kube-proxy call (conntrack, ethtool, socat, iproute2, util-linux's nsenter/mount).
# Idempotent: a machine that has everything installs nothing and does not run apt-get update.
#
# Usage: hack/e2e/install-deps.sh   (as root)
set -euo pipefail

packages=(containerd runc containernetworking-plugins iptables iproute2 conntrack ethtool socat util-linux kmod)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all installed (${packages[*]})"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing ${missing[*]}; run as root: sudo $0" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Only refresh the package lists when apt can't find a package (fresh machine or stale lists).
if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
fi
# The package's own containerd (systemd unit) is not used: the harness starts its own with a private config.
echo "install-deps: installed ${missing[*]}"
