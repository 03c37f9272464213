#!/usr/bin/env bash
# Starts a private Docker daemon for tests that need one (testcontainers-go, kind), without touching the machine's
# default Docker setup: its own socket, data root, exec root, bridge and containerd; no iptables rules, no IP
# forwarding, no masquerading. Containers' DNS goes to the bridge's own address, where nothing answers: Docker's
# embedded DNS still resolves container names, and a name outside fails here instead of being forwarded to this
# machine's resolver. Published ports are served by docker-proxy on the loopback address the test asks for,
# and reach the container over a bridge that only this daemon uses, so traffic stays on this machine.
#
# Usage: eval "$(hack/docker/start.sh)"   # prints export DOCKER_HOST=... and the testcontainers settings
# Stop:  hack/docker/stop.sh
set -euo pipefail

name=${IRSA_DOCKER_NAME:-irsa-docker}
sock=/run/${name}.sock
exec_root=/run/${name}
data_root=/var/lib/${name}
pidfile=/run/${name}.pid
log=/var/log/${name}.log
bridge=${IRSA_DOCKER_BRIDGE:-irsadock0}
# A small private range for the bridge; change it with IRSA_DOCKER_BIP if it collides with something.
bip=${IRSA_DOCKER_BIP:-10.213.77.1/24}
# User-defined networks (testcontainers, kind) get /24s from this pool instead of Docker's 172.17+ defaults.
pool=${IRSA_DOCKER_POOL:-10.213.128.0/17}
here=$(cd "$(dirname "$0")" && pwd)

say() { echo "start.sh: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	say "must run as root (it starts dockerd)"; exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
	say "dockerd not found; installing Debian's docker.io"
	# /usr/sbin/policy-rc.d (exit 101) keeps the package from starting the system daemon; we start our own below.
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io >&2 ||
		{ apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io >&2; }
fi
dockerd=$(command -v dockerd)
docker_cli=/usr/bin/docker
[ -x "$docker_cli" ] || docker_cli=$(command -v docker)

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	say "already running (pid $(cat "$pidfile"))"
else
	# The bridge is ours: created here, deleted by stop.sh.
	if ! ip link show "$bridge" >/dev/null 2>&1; then
		ip link add "$bridge" type bridge
		ip addr add "$bip" dev "$bridge"
	fi
	ip link set "$bridge" up

	# runc refuses containers that ask for CAP_SYS_RESOURCE here (it is missing from the bounding set); the wrapper
	# drops it from the OCI spec so --privileged containers start.
	mkdir -p "$exec_root" "$data_root"
	cp "$here/runc-wrapper.sh" "$exec_root/runc-wrapper"
	chmod 0755 "$exec_root/runc-wrapper"
	cat >"$exec_root/daemon.json" <<JSON
{
  "runtimes": {"irsa-runc": {"path": "$exec_root/runc-wrapper"}},
  "default-runtime": "irsa-runc"
}
JSON
	(
		# A daemon must not keep a descriptor its caller holds (a flock on a shared lock would stay held for as long
		# as dockerd runs): close every inherited one above 2 before starting it.
		for fd in /proc/"$BASHPID"/fd/*; do
			fd=${fd##*/}
			if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
		done
		exec setsid "$dockerd" \
		--config-file "$exec_root/daemon.json" \
		--host "unix://$sock" \
		--pidfile "$pidfile" \
		--data-root "$data_root" \
		--exec-root "$exec_root" \
		--bridge "$bridge" \
		--default-address-pool "base=$pool,size=24" \
		--iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
		--dns "${bip%/*}" \
		--userland-proxy=true \
		--storage-driver overlay2 \
		--log-level warn \
		</dev/null >>"$log" 2>&1
	) &
	say "dockerd started (pid $!), log $log"
fi

deadline=$((SECONDS + 60))
until DOCKER_HOST="unix://$sock" "$docker_cli" version >/dev/null 2>&1; do
	if [ $SECONDS -ge $deadline ]; then
		say "dockerd did not answer on $sock within 60s; last log lines:"; tail -20 "$log" >&2; exit 1
	fi
	sleep 0.2
done

echo "export DOCKER_HOST=unix://$sock"
# Ryuk's image cannot be pulled here, and the default host guess (the bridge gateway) is not loopback.
echo "export TESTCONTAINERS_RYUK_DISABLED=true"
echo "export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1"
