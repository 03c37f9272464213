#!/usr/bin/env bash
# runc wrapper for the private dockerd of hack/docker/start.sh: removes CAP_SYS_RESOURCE from the OCI spec before
# `runc create`/`runc run`, because this machine's capability bounding set lacks it and runc then fails with
# "unable to apply caps: operation not permitted" (for --privileged containers). Everything else goes to runc as is.
set -euo pipefail
runc=${IRSA_RUNC:-/usr/bin/runc}
bundle=""
cmd=""
prev=""
for a in "$@"; do
	case "$prev" in --bundle|-b) bundle=$a ;; esac
	case "$a" in create|run) [ -z "$cmd" ] && cmd=$a ;; --bundle=*) bundle=${a#--bundle=} ;; esac
	prev=$a
done
if [ -n "$cmd" ] && [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
	tmp=$(mktemp "$bundle/config.json.XXXXXX")
	jq '(.process.capabilities // {}) as $c
	    | if .process.capabilities then .process.capabilities |= with_entries(.value |= map(select(. != "CAP_SYS_RESOURCE"))) else . end' \
		"$bundle/config.json" >"$tmp"
	mv "$tmp" "$bundle/config.json"
fi
exec "$runc" "$@"
