#!/usr/bin/env bash
# runc wrapper for the private dockerd of hack/docker/start.sh (and the containerd in irsa's kind node image):
# removes CAP_SYS_RESOURCE from the OCI spec before `runc create`/`runc run`, and from the process spec before
# `runc exec` (`docker exec --privileged`, which kind runs in its nodes), because this machine's capability bounding
# set lacks it and runc then fails with "unable to apply caps: operation not permitted". Everything else goes to
# runc as is.
set -euo pipefail
runc=${IRSA_RUNC:-/usr/bin/runc}
bundle=""
process=""
cmd=""
prev=""
for a in "$@"; do
	case "$prev" in --bundle | -b) bundle=$a ;; --process | -p) process=$a ;; esac
	case "$a" in
	create | run | exec) [ -z "$cmd" ] && cmd=$a ;;
	--bundle=*) bundle=${a#--bundle=} ;;
	--process=*) process=${a#--process=} ;;
	esac
	prev=$a
done
drop='map(select(. != "CAP_SYS_RESOURCE"))'
edit() { # edit FILE JQ-FILTER: rewrites FILE in place through a temporary file next to it
	local tmp
	tmp=$(mktemp "$1.XXXXXX")
	jq "$2" "$1" >"$tmp"
	mv "$tmp" "$1"
}
case "$cmd" in
create | run)
	if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
		edit "$bundle/config.json" "if .process.capabilities then .process.capabilities |= with_entries(.value |= $drop) else . end"
	fi
	;;
exec)
	if [ -n "$process" ] && [ -f "$process" ]; then
		edit "$process" "if .capabilities then .capabilities |= with_entries(.value |= $drop) else . end"
	fi
	;;
esac
exec "$runc" "$@"
