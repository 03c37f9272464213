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

# Progress goes to stderr (`make demo` and `make e2e` show it; stdout carries only the bin directory): which binary,
# and every 30 s how long it has been building, since a cold kube-apiserver takes 15-25 minutes.
total=9
n=0
build() { # build DIR NAME PKG LDFLAGS
	local dir=$1 name=$2 pkg=$3 ldflags=$4 start heartbeat
	n=$((n + 1))
	if [ -x "$bin/$name" ] && [ -f "$bin/$name.version" ] && [ "$(cat "$bin/$name.version")" = "$pkg@$ldflags" ]; then
		echo "build-kubernetes: [$n/$total] $name cached" >&2
		return
	fi
	start=$(date +%s)
	echo "build-kubernetes: [$n/$total] building $name ($pkg) at $(date +%H:%M:%S)" >&2
	(while sleep 30; do echo "build-kubernetes: [$n/$total] still building $name: $(($(date +%s) - start))s" >&2; done) &
	heartbeat=$!
	if ! (cd "$root/$dir" && go build -trimpath -ldflags "$ldflags" -o "$bin/$name.tmp" "$pkg"); then
		kill "$heartbeat"
		echo "build-kubernetes: [$n/$total] $name failed after $(($(date +%s) - start))s" >&2
		exit 1
	fi
	kill "$heartbeat"
	mv "$bin/$name.tmp" "$bin/$name"
	echo "$pkg@$ldflags" >"$bin/$name.version"
	echo "build-kubernetes: [$n/$total] $name built in $(($(date +%s) - start))s" >&2
}

# The apiserver first: it compiles most shared packages, so the rest are quick after it.
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kubeadm kube-proxy kubectl; do
	build e2e/tools/kubernetes "$c" "k8s.io/kubernetes/cmd/$c" "$ldflags_k8s"
done
build e2e/tools/etcd etcd . "-s -w"
build e2e/tools/webhook amazon-eks-pod-identity-webhook github.com/aws/amazon-eks-pod-identity-webhook "-s -w"
: "$etcd_version $webhook_version" # pinned in the tools modules' go.mod
echo "$bin"
