#!/usr/bin/env bash
# `make e2e` with E2E_CLUSTER=kind. On GitHub (DOCKER_HOST set) the scenario runs kind's and the emulator's
# published images. Here (no DOCKER_HOST, or E2E_KIND_LOCAL_IMAGES=1) nothing can be pulled: this starts the private
# dockerd of hack/docker/start.sh, builds (or finds cached) the Kubernetes binaries, the node image and the emulator
# image, removes what a killed earlier run left, runs the same scenario on those images, and stops the dockerd it
# started. The scenario's own teardown removes the cluster, the emulator and the network; KEEP=1 keeps the cluster
# and the daemon.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { echo "kind-e2e: $*" >&2; }
run_scenario() { go test -tags e2e -count=1 -v -timeout 45m ./e2e/scenario/; }

if [ -n "${DOCKER_HOST:-}" ] && [ "${E2E_KIND_LOCAL_IMAGES:-0}" != 1 ]; then
	run_scenario
	exit
fi

name=${IRSA_DOCKER_NAME:-irsa-docker}
stop=0
if [ -z "${DOCKER_HOST:-}" ]; then
	if ! { [ -f "/run/${name}.pid" ] && kill -0 "$(cat "/run/${name}.pid")" 2>/dev/null; }; then
		stop=1
	fi
	eval "$(hack/docker/start.sh)"
fi
keep=0
case ${KEEP:-0} in 1 | true) keep=1 ;; esac
# kind mounts /lib/modules into its nodes; Docker creates the directory when the machine has none (no loadable
# modules here). It is removed again if this run made it.
made_modules=0
[ -e /lib/modules ] || made_modules=1
finish() {
	if [ "$keep" = 1 ]; then
		say "KEEP=1: the cluster and the daemon at $DOCKER_HOST stay up"
		return
	fi
	hack/kind/clean.sh || true
	if [ "$stop" = 1 ]; then hack/docker/stop.sh; fi
	if [ "$made_modules" = 1 ]; then rmdir /lib/modules 2>/dev/null || true; fi
}
trap finish EXIT
trap 'exit 130' INT TERM
export TESTCONTAINERS_RYUK_DISABLED=${TESTCONTAINERS_RYUK_DISABLED:-true}
export TESTCONTAINERS_HOST_OVERRIDE=${TESTCONTAINERS_HOST_OVERRIDE:-127.0.0.1}
hack/kind/clean.sh

t=$SECONDS
hack/build-kubernetes.sh >/dev/null
say "kubernetes binaries ready in $((SECONDS - t))s"
t=$SECONDS
E2E_KIND_NODE_IMAGE=$(hack/kind/build-node.sh | tail -1)
say "node image $E2E_KIND_NODE_IMAGE ready in $((SECONDS - t))s"
export E2E_KIND_NODE_IMAGE
case ${E2E_AWS:-moto} in
localstack | moto)
	t=$SECONDS
	E2E_AWS_IMAGE=$(hack/kind/build-emulator.sh "${E2E_AWS:-moto}" | tail -1)
	say "emulator image $E2E_AWS_IMAGE ready in $((SECONDS - t))s"
	export E2E_AWS_IMAGE
	;;
esac
t=$SECONDS
run_scenario
say "scenario done in $((SECONDS - t))s"
