#!/usr/bin/env bash
# Installs the pinned release tools from the Go module proxy (no GitHub download, checked against the Go checksum
# database) into a cache outside the repository, each in its own versioned directory, and prints those directories
# joined with ':' on its last line, ready to put in front of PATH. A tool already built at its version is kept.
#
#   goreleaser       archives, checksums, SBOMs, signatures (.goreleaser.yaml)
#   cyclonedx-gomod  the CycloneDX SBOM of each binary, from the module versions Go embeds in it
#   cosign           keyless signatures (GitHub only: it needs the workflow's OIDC token)
#   crane            resolves image references against their registries (GitHub only: no registry here)
#
# Usage: hack/release/tools.sh [TOOL...]     (default: goreleaser cyclonedx-gomod)
# Env:   IRSA_CACHE (default ~/.cache/irsa)
set -euo pipefail

declare -A module=(
	[goreleaser]=github.com/goreleaser/goreleaser/v2@v2.13.3
	[cyclonedx-gomod]=github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.9.0
	[cosign]=github.com/sigstore/cosign/v2/cmd/cosign@v2.6.1
	# The same go-containerregistry as go.mod.
	[crane]=github.com/google/go-containerregistry/cmd/crane@v0.22.1
)
cache=${IRSA_CACHE:-$HOME/.cache/irsa}
[ $# -gt 0 ] || set -- goreleaser cyclonedx-gomod

dirs=()
for name in "$@"; do
	mod=${module[$name]:-}
	if [ -z "$mod" ]; then
		echo "release-tools: unknown tool $name: want one of ${!module[*]}" >&2
		exit 1
	fi
	dir=$cache/tools/$name-${mod##*@}
	dirs+=("$dir")
	if [ -x "$dir/$name" ]; then
		echo "release-tools: $name ${mod##*@} cached" >&2
		continue
	fi
	mkdir -p "$dir"
	start=$(date +%s)
	echo "release-tools: building $name ($mod), minutes the first time" >&2
	# A big build on a shared machine: one heavy build at a time.
	flock /tmp/irsa-heavy.lock env GOBIN="$dir" CGO_ENABLED=0 GOFLAGS=-mod=mod go install "$mod"
	echo "release-tools: $name built in $(($(date +%s) - start))s" >&2
done
(IFS=:; echo "${dirs[*]}")
