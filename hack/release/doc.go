// Package release holds the checks of a release build: `make release-snapshot` builds one into _output/release
// (goreleaser, then the multi-arch image) and runs this package's tests, tagged release, on what came out.
package release
