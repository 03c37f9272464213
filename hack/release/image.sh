#!/usr/bin/env bash
# Builds the multi-arch irsa image (linux/amd64, linux/arm64) from the linux binaries goreleaser put in DIST, named
# exactly as those binaries name their own default image (`irsa version -o json`), so the CLI and the image cannot
# drift. Writes it as an OCI image layout in DIST/image; with `push`, also pushes it (docker login first) and prints
# REF@DIGEST on its last line, for cosign.
#
# Usage: hack/release/image.sh DIST [push]
set -euo pipefail
cd "$(dirname "$0")/../.."
dist=${1:?usage: hack/release/image.sh DIST [push]}
mode=${2:-}

binary() { # binary GOARCH: the path goreleaser built for linux/GOARCH
	jq -r --arg arch "$1" '.[] | select(.type == "Binary" and .goos == "linux" and .goarch == $arch) | .path' "$dist/artifacts.json"
}
amd64=$(binary amd64)
arm64=$(binary arm64)
if [ -z "$amd64" ] || [ -z "$arm64" ]; then
	echo "image: no linux binaries in $dist/artifacts.json" >&2
	exit 1
fi

native=$(binary "$(go env GOARCH)")
ref=$("$native" version -o json | jq -r .images.irsa)
args=(-ref "$ref" -path /usr/local/bin/irsa -platform "amd64=$amd64" -platform "arm64=$arm64" -layout "$dist/image")
if [ "$mode" = push ]; then
	digest=$(go run ./hack/image "${args[@]}" -push)
	echo "${ref%:*}@$digest"
else
	go run ./hack/image "${args[@]}"
fi
