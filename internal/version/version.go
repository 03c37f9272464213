// Package version says which irsa this binary is: the release version and commit stamped in at build time, or, for
// `go install github.com/irsa-anywhere/irsa/cmd/irsa@vX.Y.Z` and plain `go build`, what the Go toolchain recorded in
// the binary. The release version also names the irsa image the binary deploys, so the CLI and the image it runs on
// the nodes are always the same build.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// Set at build time by the release and `make build`:
//
//	-ldflags "-X github.com/irsa-anywhere/irsa/internal/version.version=v0.2.0 -X github.com/irsa-anywhere/irsa/internal/version.commit=abc123"
//
// Empty means: read the Go build information.
var (
	version string
	commit  string
)

// Dev is the version of a build that is not a release: a working tree, a pseudo-version, a modified checkout.
const Dev = "dev"

// Info describes this binary.
type Info struct {
	// Version is a release version such as "v0.2.0", or Dev.
	Version string `json:"version"`
	// Commit is the git commit the binary was built from; empty when unknown.
	Commit string `json:"commit,omitempty"`
	// GoVersion is the Go toolchain that built it, such as "go1.26.8".
	GoVersion string `json:"goVersion"`
	// Modified is set when the working tree had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
}

// Release reports whether the binary is a tagged release (its version names a published image).
func (i Info) Release() bool { return i.Version != Dev }

// Get returns the version of this binary.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, commit, bi)
}

// resolve prefers the build-time stamp, then the module version Go recorded (set by `go install …@vX.Y.Z`), then
// the VCS revision `go build` records in a checkout. Anything that is not a plain semantic version — a
// pseudo-version (v0.0.0-2026…-abcdef), "(devel)", a "+dirty" build — is Dev.
func resolve(stamped, stampedCommit string, bi *debug.BuildInfo) Info {
	info := Info{Version: Dev, Commit: stampedCommit, GoVersion: runtime.Version()}
	v := stamped
	if bi != nil {
		info.GoVersion = bi.GoVersion
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if IsRelease(v) {
		info.Version = v
	}
	if strings.HasSuffix(v, "+dirty") {
		info.Modified = true
	}
	return info
}

// IsRelease reports whether v is a release version: a canonical semantic version with a leading "v"
// ("v1.2.3", "v1.2.3-rc.1"), not a Go pseudo-version and without build metadata.
func IsRelease(v string) bool {
	return semver.IsValid(v) && semver.Canonical(v) == v && !module.IsPseudoVersion(v)
}
