#!/usr/bin/env bash
# Resolves every default image reference irsa deploys against its registry and fails when one is missing: the
# check this machine's tests cannot make (no registry is reachable here). Runs on GitHub (ci.yml, release.yml).
#
# Usage: hack/release/check-images.sh [IRSA_BINARY]
#   With a binary (the release's): every image it deploys, its own irsa image included.
#   Without: a binary stamped with the newest release tag, if there is one; before the first release the irsa
#   image is left out with a notice, since no tag names it yet.
set -euo pipefail
cd "$(dirname "$0")/../.."
PATH=$(hack/release/tools.sh crane):$PATH
irsa=${1:-}
if [ -z "$irsa" ]; then
	irsa=$(mktemp -d)/irsa
	tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || true)
	CGO_ENABLED=0 go build -ldflags "-X github.com/irsa-anywhere/irsa/internal/version.version=${tag:-dev}" -o "$irsa" ./cmd/irsa
fi
release=$("$irsa" version -o json | jq -r '.version != "dev"')
# Anonymous, as a cluster without pull secrets pulls: a private package must fail here.
DOCKER_CONFIG=$(mktemp -d)
export DOCKER_CONFIG
missing=0
while read -r ref; do
	if [ "$release" != true ] && [[ $ref == ghcr.io/irsa-anywhere/irsa:* ]]; then
		echo "::notice::no release tag yet: $ref is published by the first release"
		continue
	fi
	if digest=$(crane digest "$ref" 2>&1); then
		echo "ok       $ref@$digest"
	else
		echo "::error::image $ref does not resolve: $digest"
		missing=1
	fi
done < <("$irsa" images)
exit "$missing"
