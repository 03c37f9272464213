package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every irsa.yaml mistake names the field's path and its line; field names match exactly.
func TestLoadStrictFields(t *testing.T) {
	t.Parallel()
	head := "apiVersion: " + APIVersion + "\nkind: " + Kind + "\n"
	cases := []struct {
		name, yaml string
		want       []string // substrings of the error; none: loads
	}{
		{"valid", head + "clusterName: a\nbucket: b\nbindings:\n- namespace: n\n  serviceAccount: s\n  createServiceAccount: true\nimages:\n  registry: r.example\n", nil},
		{"top-level typo", head + "clusterName: a\nbukcet: b\n", []string{`line 4: unknown field "bukcet"`, "irsa.yaml has ", "bucket"}},
		{"case differs", head + "Bucket: b\n", []string{`line 3: unknown field "Bucket"`, `case-sensitive: did you mean "bucket"?`}},
		{"nested in a list", head + "bindings:\n- namespace: n\n  serviceAccount: s\n- namespace: m\n  serviceAccount: t\n  polcyARNs: [x]\n",
			[]string{`line 8: unknown field "bindings[1].polcyARNs"`, "bindings[1] has ", "policyARNs"}},
		{"nested in a map", head + "webhook:\n  replica: 3\n", []string{`line 4: unknown field "webhook.replica"`}},
		{"two at once", head + "regin: x\nverify:\n  imag: y\n", []string{`line 3: unknown field "regin"`, `line 5: unknown field "verify.imag"`}},
		{"wrong type", head + "bindings: default/app\n", []string{"cannot unmarshal string into field bindings"}},
		{"duplicate key", head + "bucket: a\nbucket: b\n", []string{`"bucket"`, "line 4"}},
		{"not YAML", head + "bucket: [\n", []string{"line"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "irsa.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := Load(p)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("valid file: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("loaded, want an error with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "JSON") || strings.Contains(err.Error(), "json:") {
				t.Errorf("error about a YAML file speaks of JSON: %q", err)
			}
		})
	}
}
