#!/usr/bin/env bash
# Installs the pinned release tools from the Go module proxy into a cache outside the repository and prints their
# directory on its last line: goreleaser (archives, checksums, SBOMs, signatures) and cyclonedx-gomod (the SBOM of
# each binary, from the module versions Go embeds in it). A tool already built at its pinned version is kept.
#
# Usage: hack/release/tools.sh
# Env:   IRSA_CACHE (default ~/.cache/irsa)
set -euo pipefail

goreleaser_version=v2.13.3
cyclonedx_version=v1.9.0
cache=${IRSA_CACHE:-$HOME/.cache/irsa}
bin=$cache/tools/release-$goreleaser_version-$cyclonedx_version
mkdir -p "$bin"

install() { # install NAME MODULE@VERSION
	local name=$1 mod=$2 start
	if [ -x "$bin/$name" ]; then
		echo "release-tools: $name cached" >&2
		return
	fi
	start=$(date +%s)
	echo "release-tools: building $name ($mod), a few minutes the first time" >&2
	# A heavy build on a shared machine: one at a time (see hack/build-kubernetes.sh).
	flock /tmp/irsa-heavy.lock env GOBIN="$bin" CGO_ENABLED=0 GOFLAGS=-mod=mod go install "$mod"
	echo "release-tools: $name built in $(($(date +%s) - start))s" >&2
}

install goreleaser github.com/goreleaser/goreleaser/v2@$goreleaser_version
install cyclonedx-gomod github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$cyclonedx_version
echo "$bin"
