#!/usr/bin/env bash
# A release as far as it can go without a registry or GitHub: goreleaser's snapshot (binaries for linux and darwin
# on amd64 and arm64, archives, checksums, SBOMs; no publishing, no signing) and the multi-arch irsa image as an OCI
# layout, all in _output/release; then the tests of hack/release check what came out.
#
# Usage: hack/release/snapshot.sh   (make release-snapshot)
set -euo pipefail
cd "$(dirname "$0")/../.."
PATH=$(hack/release/tools.sh goreleaser cyclonedx-gomod):$PATH
export PATH
start=$(date +%s)
if ! git remote get-url origin >/dev/null 2>&1; then
	# goreleaser reads the commit only once `git ls-remote --get-url` answers (no network); a checkout without a
	# remote gets the public URL through git's environment config, without touching the repository's config.
	export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url GIT_CONFIG_VALUE_0=https://github.com/irsa-anywhere/irsa.git
fi
# Four cross-builds of irsa: a heavy build on a shared machine.
flock /tmp/irsa-heavy.lock goreleaser release --snapshot --clean --skip=sign
hack/release/image.sh _output/release
echo "release-snapshot: built in $(($(date +%s) - start))s" >&2
IRSA_RELEASE_DIST=$PWD/_output/release go test -count=1 -tags release ./hack/release/
