# Shared by hack/kind/build-node.sh and build-emulator.sh (sourced): pinned Debian rootfs builds with debootstrap,
# cached as tarballs under $IRSA_CACHE/kind, and image imports into the Docker daemon at $DOCKER_HOST.

suite=bookworm
mirror=http://deb.debian.org/debian
cache=${IRSA_CACHE:-$HOME/.cache/irsa}
kind_cache=$cache/kind
heavy_lock=/tmp/irsa-heavy.lock

say() { echo "$prog: $*" >&2; }

# cleanup_stale_builds unmounts and removes build directories left by a run that was killed (its trap never ran).
# A build directory carries the PID of the run that made it; a live PID's directory is left alone.
cleanup_stale_builds() {
	local d pid m
	mkdir -p "$kind_cache/build"
	for d in "$kind_cache"/build/*; do
		[ -d "$d" ] || continue
		pid=${d##*.}
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then continue; fi
		say "removing $d left by an earlier run"
		remove_build "$d"
	done
}

# remove_build unmounts whatever is mounted under dir (debootstrap mounts /proc and /sys there), then removes it.
remove_build() {
	local dir=$1 m
	[ -d "$dir" ] || return 0
	awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
		umount -l "$m" || true
	done
	rm -rf --one-file-system "$dir"
}

# new_build NAME sets build_dir to a new build directory owned by this run and removed when it exits.
new_build() {
	build_dir=$kind_cache/build/$1.$$
	remove_build "$build_dir"
	mkdir -p "$build_dir"
	builds+=("$build_dir")
}
builds=()
trap 'for b in "${builds[@]}"; do remove_build "$b"; done' EXIT

# rootfs_tarball NAME PACKAGE=VERSION... sets rootfs to a Debian $suite rootfs (minbase) with the packages, as a
# tarball cached by its package list. debootstrap resolves the packages' dependencies; the versions installed are then checked
# against the pins, so a changed mirror fails loudly instead of building something else.
rootfs_tarball() {
	local name=$1; shift
	local key pkgs=() pins=() tarball dir start p want got
	rootfs=""
	key=$(printf '%s\n' "$suite" "$mirror" "$@" | sha256sum | cut -c1-16)
	tarball=$kind_cache/rootfs/$name-$suite-$key.tar
	if [ -f "$tarball" ]; then
		say "rootfs $name cached ($tarball)"
		rootfs=$tarball
		return
	fi
	for p in "$@"; do pkgs+=("${p%%=*}"); pins+=("$p"); done
	command -v debootstrap >/dev/null || { say "installing debootstrap"; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >&2; }
	new_build "rootfs-$name"
	dir=$build_dir
	start=$SECONDS
	say "debootstrap $suite ($name: ${pkgs[*]}) into $dir; waiting for $heavy_lock"
	flock "$heavy_lock" debootstrap --variant=minbase --include="$(IFS=,; echo "${pkgs[*]}")" "$suite" "$dir/root" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
		{ say "debootstrap failed; last lines:"; tail -20 "$dir/debootstrap.log" >&2; return 1; }
	for p in "${pins[@]}"; do
		want=${p#*=}
		got=$(chroot "$dir/root" dpkg-query -W -f='${Version}' "${p%%=*}")
		if [ "$got" != "$want" ]; then
			say "package ${p%%=*}: mirror gave $got, pinned $want; update the pin in hack/kind after checking the change"
			return 1
		fi
	done
	rm -rf "$dir/root/var/cache/apt/archives/"*.deb "$dir/root/var/lib/apt/lists/"*
	mkdir -p "$kind_cache/rootfs"
	tar -C "$dir/root" --numeric-owner -cf "$tarball.tmp" .
	mv "$tarball.tmp" "$tarball"
	say "rootfs $name built in $((SECONDS - start))s ($tarball)"
	remove_build "$dir"
	rootfs=$tarball
}

# image_key REF: the build key recorded on the image in the daemon, empty when the image is missing.
image_key() {
	docker image inspect --format '{{index .Config.Labels "io.irsa.build-key"}}' "$1" 2>/dev/null || true
}

# import_rootfs SRC REF KEY CHANGE...: imports SRC (a directory or a tarball) as a single-layer image with the
# Dockerfile CHANGEs.
import_rootfs() {
	local src=$1 ref=$2 key=$3 start=$SECONDS; shift 3
	local args=(--change "LABEL io.irsa.build-key=$key")
	for c in "$@"; do args+=(--change "$c"); done
	if [ -d "$src" ]; then
		tar -C "$src" --numeric-owner -c . | docker import "${args[@]}" - "$ref" >/dev/null
	else
		docker import "${args[@]}" - "$ref" <"$src" >/dev/null
	fi
	say "imported $ref in $((SECONDS - start))s"
}

require_docker() {
	if [ -z "${DOCKER_HOST:-}" ] || ! docker version >/dev/null 2>&1; then
		say "no Docker daemon at DOCKER_HOST=${DOCKER_HOST:-}: start one with eval \"\$(hack/docker/start.sh)\""
		return 1
	fi
}
