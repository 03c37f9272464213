package version

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		name            string
		stamped, commit string
		bi              *debug.BuildInfo
		want            Info
	}{
		{"release stamped by ldflags", "v0.2.0", "abc123", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			Info{Version: "v0.2.0", Commit: "abc123", GoVersion: "go1.26.8"}},
		{"go install @v0.2.0", "", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.2.0"}},
			Info{Version: "v0.2.0", GoVersion: "go1.26.8"}},
		{"release candidate", "", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.3.0-rc.1"}},
			Info{Version: "v0.3.0-rc.1", GoVersion: "go1.26.8"}},
		{"go build in a clean checkout: pseudo-version", "", "", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Version: "v0.2.1-0.20261130020304-0123456789ab"}, Settings: vcs("0123456789abcdef", "false")},
			Info{Version: Dev, Commit: "0123456789abcdef", GoVersion: "go1.26.8"}},
		{"go build in a modified checkout", "", "", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Version: "v0.2.0+dirty"}, Settings: vcs("0123456789abcdef", "true")},
			Info{Version: Dev, Commit: "0123456789abcdef", GoVersion: "go1.26.8", Modified: true}},
		{"no VCS information", "", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			Info{Version: Dev, GoVersion: "go1.26.8"}},
		{"stamp that is not a release", "main", "", &debug.BuildInfo{GoVersion: "go1.26.8"},
			Info{Version: Dev, GoVersion: "go1.26.8"}},
		{"stamped commit wins over the VCS one", "v1.0.0", "fromldflags", &debug.BuildInfo{GoVersion: "go1.26.8", Settings: vcs("fromvcs", "false")},
			Info{Version: "v1.0.0", Commit: "fromldflags", GoVersion: "go1.26.8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := resolve(tc.stamped, tc.commit, tc.bi); got != tc.want {
				t.Errorf("resolve(%q, %q) = %+v, want %+v", tc.stamped, tc.commit, got, tc.want)
			}
		})
	}
}

func TestIsRelease(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]bool{
		"v0.1.0": true, "v1.2.3-rc.1": true, "v1.2": false, "1.2.3": false, "v1.2.3+meta": false, "dev": false, "": false,
		"v0.0.0-20261130020304-0123456789ab": false, "(devel)": false,
	} {
		if got := IsRelease(v); got != want {
			t.Errorf("IsRelease(%q) = %v, want %v", v, got, want)
		}
	}
}
