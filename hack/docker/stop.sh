#!/usr/bin/env bash
# Stops the private dockerd started by hack/docker/start.sh (by its PID), then removes its bridge.
# Containers it ran stop with it; its data root stays as a cache of built images (IRSA_DOCKER_PURGE=1 removes it).
set -euo pipefail
name=${IRSA_DOCKER_NAME:-irsa-docker}
pidfile=/run/${name}.pid
bridge=${IRSA_DOCKER_BRIDGE:-irsadock0}
say() { echo "stop.sh: $*" >&2; }

if [ -f "$pidfile" ]; then
	pid=$(cat "$pidfile")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		if kill -0 "$pid" 2>/dev/null; then say "dockerd $pid still running after 30s; sending KILL"; kill -KILL "$pid"; fi
		say "dockerd $pid stopped"
	fi
	rm -f "$pidfile"
fi
if ip link show "$bridge" >/dev/null 2>&1; then
	ip link delete "$bridge"
fi
rm -f "/run/${name}.sock"
if [ "${IRSA_DOCKER_PURGE:-0}" = 1 ]; then
	# overlay mounts under the data root are gone once dockerd exits; anything left mounted is reported, not forced.
	if grep -q " /var/lib/${name}" /proc/mounts; then say "mounts remain under /var/lib/${name}; not purging"; exit 1; fi
	rm -rf "/var/lib/${name}" "/run/${name}"
fi
