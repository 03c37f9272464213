#!/usr/bin/env bash
# Runs the docker-tagged tests (testcontainers-go against a real daemon): `make test-docker`. Without DOCKER_HOST
# it starts the private dockerd of hack/docker/start.sh and, if this script started it, stops it again at the end.
# Arguments are package patterns; the default is every package with a `//go:build docker` test file.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${IRSA_DOCKER_NAME:-irsa-docker}
stop=0
if [ -z "${DOCKER_HOST:-}" ]; then
	if ! { [ -f "/run/${name}.pid" ] && kill -0 "$(cat "/run/${name}.pid")" 2>/dev/null; }; then
		stop=1
	fi
	eval "$(hack/docker/start.sh)"
fi
cleanup() { if [ "$stop" = 1 ]; then hack/docker/stop.sh; fi; }
trap cleanup EXIT
export TESTCONTAINERS_RYUK_DISABLED=${TESTCONTAINERS_RYUK_DISABLED:-true}
export TESTCONTAINERS_HOST_OVERRIDE=${TESTCONTAINERS_HOST_OVERRIDE:-127.0.0.1}
if [ $# -eq 0 ]; then
	mapfile -t pkgs < <(grep -rlE --include='*_test.go' '^//go:build .*\bdocker\b' . | xargs -r -n1 dirname | sort -u)
	if [ ${#pkgs[@]} -eq 0 ]; then echo "test.sh: no docker-tagged tests found" >&2; exit 1; fi
	set -- "${pkgs[@]}"
fi
go test -tags docker -count=1 "$@"
