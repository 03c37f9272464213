#!/usr/bin/env bash
# Builds the AWS Controllers for Kubernetes (ACK) S3 controller from the Go module proxy into a cache outside the
# repository, for the e2e's ACK step (e2e/scenario/ack.go): the static binary, its image (hack/image: the binary on
# an empty base) and the manifests its module ships (helm/crds, the controller's ClusterRole). Nothing of ACK is
# committed here: a scratch module under the cache requires the pinned version. What is already built for the pinned
# version is not built again.
#
# The proxy serves github.com/aws-controllers-k8s/s3-controller v1.1.1 (checked 2026-11-30 with
# `go list -m -json ...@v1.1.1`; its version list and v1.1.2, v1.2.x, v1.3.0 answer 403). Cold build on 2 cores:
# ~3 min when the machine is idle.
#
# Usage: hack/build-ack.sh   (prints the output directory on its last line: controller, image.tar, image.ref,
#                             crds/*.yaml, rbac/cluster-role-{controller,binding}.yaml)
# Env:   IRSA_CACHE (default ~/.cache/irsa)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
module=github.com/aws-controllers-k8s/s3-controller
version=v1.1.1
# The e2e's name for the image, under a registry that does not exist, like e2e/images' own images.
ref=irsa.local/e2e/ack-s3-controller:$version
cache=${IRSA_CACHE:-$HOME/.cache/irsa}
out=$cache/bin/ack-s3-controller-$version
work=$cache/build/ack-s3-controller-$version
stamp="$module@$version"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
mkdir -p "$out"

start=$(date +%s)
if [ -x "$out/controller" ] && [ "$(cat "$out/version" 2>/dev/null)" = "$stamp" ]; then
	echo "build-ack: ack-s3-controller $version cached" >&2
else
	echo "build-ack: building ack-s3-controller $version at $(date +%H:%M:%S)" >&2
	mkdir -p "$work"
	cat >"$work/go.mod" <<GOMOD
module irsa.local/build/ack-s3-controller

go 1.25

require $module $version
GOMOD
	cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/aws-controllers-k8s/s3-controller/cmd/controller"
GO
	(while sleep 30; do echo "build-ack: still building: $(($(date +%s) - start))s" >&2; done) &
	heartbeat=$!
	trap 'kill $heartbeat 2>/dev/null || true' EXIT
	(cd "$work" && go mod tidy && go build -trimpath -ldflags "-s -w -X $module/pkg/version.GitVersion=$version" -o "$out/controller.tmp" "$module/cmd/controller")
	mv "$out/controller.tmp" "$out/controller"
	rm -f "$out/image.tar"
	echo "$stamp" >"$out/version"
	kill $heartbeat 2>/dev/null || true
	echo "build-ack: ack-s3-controller $version built in $(($(date +%s) - start))s" >&2
fi

if ! compgen -G "$out/crds/*.yaml" >/dev/null || [ ! -f "$out/rbac/cluster-role-binding.yaml" ]; then
	moddir=$(cd "$work" && go list -m -f '{{.Dir}}' "$module")
	mkdir -p "$out/crds" "$out/rbac"
	cp "$moddir"/helm/crds/*.yaml "$out/crds/"
	cp "$moddir/config/rbac/cluster-role-controller.yaml" "$moddir/config/rbac/cluster-role-binding.yaml" "$out/rbac/"
	chmod -R u+w "$out/crds" "$out/rbac"
fi

if [ ! -f "$out/image.tar" ] || [ "$(cat "$out/image.ref" 2>/dev/null)" != "$ref" ]; then
	(cd "$root" && go run ./hack/image -ref "$ref" -binary "$out/controller" -path /ack-s3-controller -o "$out/image.tar.tmp")
	mv "$out/image.tar.tmp" "$out/image.tar"
	echo "$ref" >"$out/image.ref"
fi
echo "$out"
