#!/usr/bin/env bash
# Checks the irsa Dagger module (dagger.json, ci/) without a Dagger engine, which cannot run on the
# build machines (no container registry; the engine cannot be built from the Go proxy):
#   1. builds the Dagger code generator pinned in hack/dagger/go.mod (cached per go.sum);
#   2. converts the core schema shipped as SDL in that github.com/dagger/dagger module to
#      introspection JSON (hack/dagger/sdl2introspection), and checks that the API it yields is the
#      published dagger.io/dagger client library's, less the Host and Engine types modules never see;
#   3. generates ci/dagger.gen.go and ci/internal/dagger/ offline, as `dagger develop` would;
#   4. builds, vets and gofmt-checks the module and runs its tests, which call every function
#      through the generated dispatcher against a fake engine (ci/fakeengine) and check the type
#      definitions (functions, arguments, +optional/+default/+defaultPath/+cache) the generator
#      declares to the engine when it loads the module.
# What it cannot check: that a real engine runs the pipelines (images, execs, secrets at run time).
#
# Usage: hack/dagger/check.sh
# Env:   IRSA_CACHE (default ~/.cache/irsa) holds the built generator and the introspection JSON.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
tools=$root/hack/dagger
module_name=irsa
export GOFLAGS=-buildvcs=false

say() { echo "dagger-check: $*"; }
fail() { echo "dagger-check: FAIL: $*" >&2; exit 1; }

version=$(cd "$tools" && go list -m -f '{{.Version}}' github.com/dagger/dagger)
lib_version=$(cd "$tools" && go list -m -f '{{.Version}}' dagger.io/dagger)
[ "$version" = "$lib_version" ] ||
	fail "hack/dagger/go.mod pins github.com/dagger/dagger $version but dagger.io/dagger $lib_version; pin both to one version"
grep -Eq "\"engineVersion\": *\"$version\"" "$root/dagger.json" ||
	fail "dagger.json engineVersion is not $version, the version hack/dagger/go.mod pins"
grep -Eq "\"name\": *\"$module_name\"" "$root/dagger.json" || fail "dagger.json name is not $module_name"
grep -Eq '"source": *"ci"' "$root/dagger.json" || fail "dagger.json source is not ci"

cache=${IRSA_CACHE:-$HOME/.cache/irsa}/dagger-$version
mkdir -p "$cache"

# 1. The generator, rebuilt only when the tools module's dependencies change.
stamp=$(cat "$tools/go.mod" "$tools/go.sum" | sha256sum | cut -c1-16)
codegen=$cache/codegen-$stamp
if [ -x "$codegen" ]; then
	say "codegen $version cached"
else
	say "building codegen $version (cold: ~2-5 min)"
	start=$(date +%s)
	(cd "$tools" && go build -o "$codegen.tmp" github.com/dagger/dagger/cmd/codegen)
	mv "$codegen.tmp" "$codegen"
	say "built codegen in $(($(date +%s) - start)) s"
fi

# 2. The converter's own tests, then the introspection JSON.
(cd "$tools" && go vet ./... && go test -count=1 ./...)
dagger_dir=$(cd "$tools" && go mod download -json github.com/dagger/dagger | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
lib_dir=$(cd "$tools" && go mod download -json dagger.io/dagger | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
schema=$dagger_dir/docs/docs-graphql/schema.graphqls
[ -f "$schema" ] || fail "core schema not found at $schema"
introspection=$cache/introspection.json
(cd "$tools" && go run ./sdl2introspection -schema "$schema" -out "$introspection.tmp" -schema-version "$version")
mv "$introspection.tmp" "$introspection"

# 3. Generate the module's code. The generator also runs `go mod tidy` in ci/.
say "generating ci/dagger.gen.go and ci/internal/dagger/"
(cd "$root" && "$codegen" generate-module --output . --module-source-path ./ci --module-name "$module_name" \
	--introspection-json-path "$introspection" --lib-version "$version" >"$cache/generate.log" 2>&1) ||
	{ cat "$cache/generate.log" >&2; fail "code generation failed (log above)"; }
generated=$root/ci/internal/dagger/dagger.gen.go
[ -f "$root/ci/dagger.gen.go" ] && [ -f "$generated" ] || fail "code generation wrote no ci/dagger.gen.go or $generated"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
	! git -C "$root" diff --quiet -- ci/go.mod ci/go.sum 2>/dev/null; then
	git -C "$root" diff --stat -- ci/go.mod ci/go.sum >&2
	fail "code generation changed ci/go.mod or ci/go.sum: commit the result"
fi

# The API generated from the converted schema must be the one the published client library for
# the same engine has (methods per type), except for Host and Engine*, which modules never see,
# and the UnmarshalJSON methods only module code has.
api() {
	grep -o '^func (r \*[A-Za-z]*) [A-Za-z]*(' "$1" |
		grep -Ev '^func \(r \*(Host|Engine[A-Za-z]*)\) |\) (UnmarshalJSON|Host|Engine|Load(Host|Engine[A-Za-z]*)FromID)\($' | sort
}
if ! diff <(api "$lib_dir/dagger.gen.go") <(api "$generated") >"$cache/api.diff"; then
	cat "$cache/api.diff" >&2
	fail "the generated module API differs from dagger.io/dagger $version (< library, > generated)"
fi
say "generated API matches dagger.io/dagger $version ($(api "$generated" | wc -l) methods)"

# 4. Build, vet, format and test the module.
cd "$root/ci"
unformatted=$(gofmt -l .)
[ -z "$unformatted" ] || fail "not gofmt-formatted: $unformatted"
go build ./...
go vet ./...
# TestTypeDefs runs the generator's generate-typedefs (what the engine does when it loads the
# module) against the fake engine and checks the functions, arguments and pragmas it declares.
IRSA_DAGGER_CODEGEN=$codegen IRSA_DAGGER_INTROSPECTION=$introspection go test -count=1 ./...
say "ok"
