#!/usr/bin/env bash
# Removes what a kind e2e run leaves behind when it is killed before its own teardown: kind's node containers
# (with their /var volumes), the emulator containers and the Docker network labelled as irsa's, and the scenario's
# temporary directories. It talks only to the daemon at $DOCKER_HOST (the private one: every kind cluster there is
# an e2e cluster). Nothing left is success.
set -euo pipefail
say() { echo "kind-clean: $*" >&2; }
[ -n "${DOCKER_HOST:-}" ] || { say "DOCKER_HOST is not set"; exit 1; }

mapfile -t nodes < <(docker ps -aq --filter label=io.x-k8s.kind.cluster)
mapfile -t owned < <(docker ps -aq --filter label=app.kubernetes.io/managed-by=irsa)
if [ $((${#nodes[@]} + ${#owned[@]})) -gt 0 ]; then
	say "removing ${#nodes[@]} kind node and ${#owned[@]} emulator container(s) left by an earlier run"
	docker rm -f -v "${nodes[@]}" "${owned[@]}" >/dev/null
fi
mapfile -t nets < <(docker network ls -q --filter label=app.kubernetes.io/managed-by=irsa)
for n in "${nets[@]}"; do
	say "removing network $(docker network inspect -f '{{.Name}}' "$n")"
	docker network rm "$n" >/dev/null
done
for d in /tmp/irsa-e2e-kind-* /tmp/irsa-e2e-localstack-* /tmp/irsa-e2e-moto-*; do
	[ -e "$d" ] || continue
	say "removing $d"
	rm -rf "$d"
done
