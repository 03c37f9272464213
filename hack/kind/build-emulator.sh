#!/usr/bin/env bash
# Builds the AWS emulator image the kind e2e runs where no registry is reachable, from pinned versions, and imports
# it into the Docker daemon at $DOCKER_HOST: LocalStack from PyPI (localstack-core[runtime]; every Python package
# pinned in hack/kind/emulator/localstack.txt) in a Debian rootfs with Python, started as LocalStack's published
# image starts it, so testcontainers-go's LocalStack module runs it the way users run the published image.
# `moto` builds moto's server the same way (hack/kind/emulator/moto.txt), for E2E_AWS=moto on kind.
#
# Usage: hack/kind/build-emulator.sh [localstack|moto]    (as root; prints the image reference on its last line)
# Env:   IRSA_CACHE (default ~/.cache/irsa)
set -euo pipefail
prog=build-emulator
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/hack/kind
# shellcheck source=hack/kind/lib.sh
. "$here/lib.sh"

# localstack-core 2026.3.0 declares Requires-Python >=3.10 but uses Python 3.12 syntax (PEP 695 generics in
# localstack/services/stores.py): on bookworm's Python 3.11 every service plugin fails to import and the runtime
# stops with "No component plugins found in namespace localstack.runtime.components". trixie has Python 3.13.
suite=trixie
packages=(
	python3=3.13.5-1 python3-venv=3.13.5-1 ca-certificates=20250419+deb13u1
)
emulator=${1:-localstack}
case $emulator in
localstack)
	ref=irsa.local/e2e/localstack:2026.3.0
	port=4566
	# No analytics events, no certificate download from GitHub, no DNS server: the emulator never reaches out.
	env=(DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 DNS_ADDRESS=0 GATEWAY_LISTEN=0.0.0.0:4566)
	;;
moto)
	ref=irsa.local/e2e/moto:5.2.2
	port=5000
	env=()
	;;
*) say "emulator \"$emulator\": want localstack or moto"; exit 1 ;;
esac
reqs=$here/emulator/$emulator.txt

[ "$(id -u)" = 0 ] || { say "must run as root (debootstrap, chroot)"; exit 1; }
start_all=$SECONDS
cleanup_stale_builds
key=$(printf '%s\n' "$suite" "${packages[@]}" | cat - "$here/build-emulator.sh" "$here/lib.sh" "$reqs" "$here/emulator/$emulator-entrypoint" | sha256sum | cut -c1-32)
# The finished rootfs is cached as a tarball, so only the import needs the Docker daemon.
built=$kind_cache/images/$emulator-$key.tar
if [ -f "$built" ]; then
	say "$emulator rootfs cached ($built)"
else
	rootfs_tarball python "${packages[@]}"
	new_build "emulator-$emulator"
	dir=$build_dir/root
	mkdir -p "$dir"
	tar -C "$dir" --numeric-owner -xf "$rootfs"
	# pip reaches PyPI from the chroot with this machine's resolver and CA bundle (PyPI may be behind a proxy with
	# its own CA); both files are removed before the image is made.
	cp /etc/resolv.conf "$dir/etc/resolv.conf"
	cp "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" "$dir/tmp/pip-ca.pem"
	cp "$reqs" "$dir/tmp/requirements.txt"
	start=$SECONDS
	say "pip install of $(grep -c '^[^#]' "$reqs") pinned packages into /opt/emulator; waiting for $heavy_lock"
	# pip's default truststore reads OpenSSL's default paths, which SSL_CERT_FILE overrides; --cert covers the rest.
	flock "$heavy_lock" env -u PIP_FIND_LINKS -u PIP_CERT SSL_CERT_FILE=/tmp/pip-ca.pem chroot "$dir" sh -c 'python3 -m venv /opt/emulator &&
		/opt/emulator/bin/pip install --cert /tmp/pip-ca.pem --no-cache-dir --disable-pip-version-check --progress-bar off -q \
			-r /tmp/requirements.txt' >&2
	say "pip install done in $((SECONDS - start))s"
	rm -f "$dir/tmp/requirements.txt" "$dir/tmp/pip-ca.pem" "$dir/etc/resolv.conf"
	install -m 0755 "$here/emulator/$emulator-entrypoint" "$dir/usr/local/bin/emulator-entrypoint"
	mkdir -p "$kind_cache/images"
	tar -C "$dir" --numeric-owner -cf "$built.tmp" .
	mv "$built.tmp" "$built"
	remove_build "$build_dir"
fi

require_docker
if [ "$(image_key "$ref")" = "$key" ]; then
	say "$ref cached (key $key)"
	echo "$ref"
	exit 0
fi
changes=('ENV PATH=/opt/emulator/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' 'ENV PYTHONUNBUFFERED=1'
	"EXPOSE $port/tcp" 'ENTRYPOINT ["/usr/local/bin/emulator-entrypoint"]')
for e in "${env[@]}"; do changes+=("ENV $e"); done
import_rootfs "$built" "$ref" "$key" "${changes[@]}"
say "emulator image $ref ready in $((SECONDS - start_all))s"
echo "$ref"
