#!/usr/bin/env bash
# Builds the binaries the host-cluster e2e needs from the Go module proxy into a cache outside the repository:
# Kubernetes (kubeadm, kubelet, kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, kubectl),
# etcd and amazon-eks-pod-identity-webhook. A binary already built for the pinned version is not built again.
#
# Usage: hack/build-kubernetes.sh            (prints the bin directory on its last line)
# Env:   IRSA_CACHE (default ~/.cache/irsa)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
k8s_version=v1.37.2
etcd_version=v3.6.16
webhook_version=v0.6.17
cache=${IRSA_CACHE:-$HOME/.cache/irsa}
bin=$cache/bin/k8s-$k8s_version
mkdir -p "$bin"

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
ldflags_k8s="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=2026-01-01T00:00:00Z -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"

build() { # build DIR NAME PKG LDFLAGS
	local dir=$1 name=$2 pkg=$3 ldflags=$4 start
	if [ -x "$bin/$name" ] && [ -f "$bin/$name.version" ] && [ "$(cat "$bin/$name.version")" = "$pkg@$ldflags" ]; then
		echo "build-kubernetes: $name cached"
		return
	fi
	start=$(date +%s)
	(cd "$root/$dir" && go build -trimpath -ldflags "$ldflags" -o "$bin/$name.tmp" "$pkg")
	mv "$bin/$name.tmp" "$bin/$name"
	echo "$pkg@$ldflags" >"$bin/$name.version"
	echo "build-kubernetes: $name built in $(($(date +%s) - start))s"
}

# The apiserver first: it compiles most shared packages, so the rest are quick after it.
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kubeadm kube-proxy kubectl; do
	build e2e/tools/kubernetes "$c" "k8s.io/kubernetes/cmd/$c" "$ldflags_k8s"
done
build e2e/tools/etcd etcd . "-s -w"
build e2e/tools/webhook amazon-eks-pod-identity-webhook github.com/aws/amazon-eks-pod-identity-webhook "-s -w"
: "$etcd_version $webhook_version" # pinned in the tools modules' go.mod
echo "$bin"
