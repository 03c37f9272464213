package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var updateHelp = flag.Bool("update", false, "rewrite the help golden files in testdata/help")

// The help of irsa and of every command is pinned by a golden file, so a change to flags or wording shows in review.
// Rewrite them with: go test ./internal/cli -run TestHelpGolden -update
func TestHelpGolden(t *testing.T) {
	root := NewRootCommand(&bytes.Buffer{}, &bytes.Buffer{})
	names := []string{""}
	for _, c := range root.Commands() {
		if !c.Hidden && c.Name() != "help" && c.Name() != "completion" {
			names = append(names, c.Name())
		}
	}
	for _, name := range names {
		args := []string{"--help"}
		file := "irsa.txt"
		if name != "" {
			args = []string{name, "--help"}
			file = name + ".txt"
		}
		var out, errOut bytes.Buffer
		if code := Main(context.Background(), args, &out, &errOut); code != 0 {
			t.Fatalf("irsa %v: exit %d: %s", args, code, errOut.String())
		}
		path := filepath.Join("testdata", "help", file)
		if *updateHelp {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if out.String() != string(want) {
			t.Errorf("irsa %v help differs from %s (run with -update if intended):\n%s", args, path, out.String())
		}
		if name != "" && name != "sts-gate" && name != "version" && name != "images" && !strings.Contains(out.String(), "Examples:") {
			t.Errorf("irsa %s --help has no examples", name)
		}
	}
}

// Under -o json and -o yaml, results have the same shape, and every error is one JSON object with the exit code.
func TestStructuredOutputAndErrors(t *testing.T) {
	e := newEnv(t)
	_, jsonOut, _ := e.run("plan", "-o", "json")
	_, yamlOut, _ := e.run("plan", "-o", "yaml")
	var fromJSON, fromYAML map[string]any
	if err := json.Unmarshal([]byte(jsonOut), &fromJSON); err != nil {
		t.Fatalf("plan -o json: %v\n%s", err, jsonOut)
	}
	if err := yaml.Unmarshal([]byte(yamlOut), &fromYAML); err != nil {
		t.Fatalf("plan -o yaml: %v\n%s", err, yamlOut)
	}
	if fromJSON["mode"] != "plan" || fromYAML["mode"] != "plan" || len(fromJSON["stages"].([]any)) != len(fromYAML["stages"].([]any)) {
		t.Errorf("json and yaml reports differ:\n%s\n%s", jsonOut, yamlOut)
	}
	for _, args := range [][]string{
		{"apply", "-o", "json", "--region", "europe"},
		{"apply", "-o", "json", "--kubeconfig", "/nonexistent/kubeconfig"},
		{"plan", "-o", "json", "--bucket", "Bad_Bucket"},
	} {
		code, _, errOut := e.run(args...)
		var got struct {
			Error struct {
				Message  string
				ExitCode int
			}
		}
		if err := json.Unmarshal([]byte(errOut), &got); err != nil || got.Error.Message == "" || got.Error.ExitCode != code || code == 0 {
			t.Errorf("irsa %v: exit %d, stderr is not one JSON error with that exit code (%v):\n%s", args, code, err, errOut)
		}
	}
}

func TestVerbosityAndQuiet(t *testing.T) {
	e := newEnv(t)
	if code, _, errOut := e.run("plan", "-q"); code != 2 || strings.Contains(errOut, "started") {
		t.Errorf("plan -q: exit %d, progress printed:\n%s", code, errOut)
	}
	if code, _, errOut := e.run("plan", "-v=4"); code != 2 || !strings.Contains(errOut, "level=DEBUG") && !strings.Contains(errOut, "level=INFO") {
		t.Errorf("plan -v=4: exit %d, no log lines:\n%s", code, errOut)
	}
	if code, _, errOut := e.run("plan", "-v=12"); code != 1 || !strings.Contains(errOut, "verbosity 12: must be 0-9") {
		t.Errorf("plan -v=12: exit %d\n%s", code, errOut)
	}
}
