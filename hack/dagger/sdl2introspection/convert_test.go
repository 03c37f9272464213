package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestConvert(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version string
		golden  string
	}{
		// Before v0.22.0 the engine also serves SecretID, QueryID, NodeID and loadFooFromID.
		{"legacy ids", "v0.21.8", "core.v0.21.8.json"},
		{"unified ids", "v0.22.0", "core.v0.22.0.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sdl, err := os.ReadFile(filepath.Join("testdata", "core.graphqls"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := convert("core.graphqls", string(sdl), tc.version)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(resp, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("introspection of testdata/core.graphqls at %s differs from %s (go test -update rewrites it):\n%s", tc.version, golden, got)
			}
		})
	}
}

func TestConvertRejects(t *testing.T) {
	for _, tc := range []struct {
		name, sdl, version string
	}{
		{"bad version", "type Query { a: String }", "0.21.8"},
		{"bad sdl", "type Query {", "v0.21.8"},
		{"unknown type", "type Query { a: Missing }", "v0.21.8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := convert("x.graphqls", tc.sdl, tc.version); err == nil {
				t.Errorf("convert accepted %q at %q", tc.sdl, tc.version)
			}
		})
	}
}
