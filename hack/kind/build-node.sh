#!/usr/bin/env bash
# Builds irsa's kind node image from pinned versions, without pulling anything, and imports it into the Docker
# daemon at $DOCKER_HOST (the private one of hack/docker/start.sh): a Debian rootfs (debootstrap from Debian's
# mirror) with systemd, containerd, runc and the CNI plugins from Debian's packages; kubeadm, kubelet and kubectl
# from hack/build-kubernetes.sh; the control-plane images from e2e/images (and kube-proxy with iptables) baked in
# and imported into the node's containerd at boot; the files under hack/kind/node (entrypoint, units, containerd
# and CNI configuration, kind's manifests). kind runs it like its own node images.
#
# Usage: hack/kind/build-node.sh     (as root; prints the image reference on its last line)
# Env:   IRSA_CACHE (default ~/.cache/irsa), IRSA_KIND_NODE_IMAGE (the reference, default below)
# Cache: the rootfs tarball under $IRSA_CACHE/kind/rootfs (by package pins); the image in the daemon carries a
#        build key (hash of every input) and is rebuilt only when it changes.
set -euo pipefail
prog=build-node
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/hack/kind
# shellcheck source=hack/kind/lib.sh
. "$here/lib.sh"

k8s_version=v1.37.2
ref=${IRSA_KIND_NODE_IMAGE:-irsa.local/kind/node:$k8s_version}
bin=$cache/bin/k8s-$k8s_version
packages=(
	systemd=252.39-1~deb12u2 systemd-sysv=252.39-1~deb12u2
	containerd=1.6.20~ds1-1+deb12u3 runc=1.1.5+ds1-1+deb12u1 containernetworking-plugins=1.1.1+ds1-3+b5
	iptables=1.8.9-2 iproute2=6.1.0-3 conntrack=1:1.4.7-1+b2 kmod=30+20221128-1 procps=2:4.0.2-3
	jq=1.6-2.1+deb12u2 ca-certificates=20230311+deb12u1 ethtool=1:6.1-1
)
# Registries a kind cluster's images come from; each resolves to a closed loopback port (see node/etc/containerd).
registries=(registry.k8s.io docker.io public.ecr.aws ghcr.io quay.io gcr.io)

[ "$(id -u)" = 0 ] || { say "must run as root (debootstrap, chroot)"; exit 1; }
start_all=$SECONDS
cleanup_stale_builds
rootfs_tarball node "${packages[@]}"
require_docker

for b in kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd; do
	[ -x "$bin/$b" ] || { say "$bin/$b missing: run hack/build-kubernetes.sh"; exit 1; }
done

key=$(
	cd "$root"
	{
		printf '%s\n' "$k8s_version" "${packages[@]}" "${registries[@]}"
		cat hack/kind/build-node.sh hack/kind/lib.sh hack/docker/runc-wrapper.sh hack/kind/nodeimages/main.go \
			e2e/images/*.go e2e/images/pause/main.go internal/ociimage/ociimage.go
		find hack/kind/node -type f | LC_ALL=C sort | xargs cat
		cat "$bin"/*.version
	} | sha256sum | cut -c1-32
)
if [ "$(image_key "$ref")" = "$key" ]; then
	say "$ref cached (key $key)"
	echo "$ref"
	exit 0
fi

new_build node
dir=$build_dir/root
mkdir -p "$dir"
say "assembling the node rootfs in $dir"
tar -C "$dir" --numeric-owner -xf "$rootfs"
cp -a "$here/node/." "$dir/"
for r in "${registries[@]}"; do
	mkdir -p "$dir/etc/containerd/certs.d/$r"
	cp "$dir/etc/containerd/certs.d/_default/hosts.toml" "$dir/etc/containerd/certs.d/$r/hosts.toml"
done
install -m 0755 "$root/hack/docker/runc-wrapper.sh" "$dir/usr/local/sbin/runc-wrapper"
for b in kubeadm kubelet kubectl; do install -m 0755 "$bin/$b" "$dir/usr/bin/$b"; done
echo "$k8s_version" >"$dir/kind/version"
mkdir -p "$dir/etc/kubernetes/manifests" "$dir/kind/images"

say "writing the images the node runs (control plane, etcd, pause, kube-proxy with iptables)"
(cd "$root" && go run ./hack/kind/nodeimages -rootfs "$dir" -o "$dir/kind/images") | sed "s/^/$prog:   /" >&2

# systemd in a container: no getty, no udev, no kernel log reading; containerd, the image import and the kubelet
# start at boot (the kubelet waits for kubeadm's configuration).
chroot "$dir" systemctl enable containerd.service irsa-preload-images.service kubelet.service >/dev/null 2>&1
chroot "$dir" systemctl mask getty.target console-getty.service systemd-udevd.service systemd-modules-load.service \
	systemd-binfmt.service systemd-logind.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
	e2scrub_all.timer fstrim.timer >/dev/null 2>&1
echo "ReadKMsg=no" >>"$dir/etc/systemd/journald.conf"

# docker import (20.10) takes no STOPSIGNAL; kind removes its nodes with `docker rm -f` anyway.
import_rootfs "$dir" "$ref" "$key" 'ENV container=docker' 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]'
say "node image $ref built in $((SECONDS - start_all))s"
echo "$ref"
