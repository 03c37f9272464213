#!/usr/bin/env bash
# Installs what irsa's tests need on a fresh build machine, and checks what cannot be installed from here.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v git >/dev/null || need_apt+=(git)
command -v jq >/dev/null || need_apt+=(jq)             # hack/release reads goreleaser's artifacts.json
if [ ${#need_apt[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

# moto 5.2.1 ships with the build machines' image (pyenv); PyPI is not reachable from them.
if ! ls "${PYENV_ROOT:-$HOME/.pyenv}"/versions/*/bin/moto_server >/dev/null 2>&1 && ! command -v moto_server >/dev/null; then
	echo "install-deps: moto_server not found: install moto[server]==5.2.1 (pip install 'moto[server]==5.2.1')" >&2
	exit 1
fi
echo "install-deps: ok"
