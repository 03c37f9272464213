#!/usr/bin/env bash
# Lints the GitHub workflows with actionlint, built from the Go module proxy at a pinned version into a cache
# directory (no GitHub download needed). shellcheck, when installed, also checks the run: scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.7.12
bin_dir=${IRSA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/irsa}/bin/actionlint-$version
if [ ! -x "$bin_dir/actionlint" ]; then
	mkdir -p "$bin_dir"
	GOBIN="$bin_dir" GOFLAGS=-mod=mod go install "github.com/rhysd/actionlint/cmd/actionlint@$version"
fi
exec "$bin_dir/actionlint" -no-color "$@" .github/workflows/*.yml
