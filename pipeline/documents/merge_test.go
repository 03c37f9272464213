package documents

import (
	"bytes"
	"crypto"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// mergeCase is testdata/merge/<case>/case.yaml: the keys wanted, the kids to retire and the expected summary, each
// key named by its PEM file in testdata or, for a kid irsa did not compute, as kid:<kid>. published.json, when
// present, is the JWKS already served; expected.json is the merged JWKS.
type mergeCase struct {
	Wanted                             []string
	Retire                             []string
	LegacyEmptyKID                     bool `json:"legacyEmptyKID"`
	Added, Retained, Retired, Stripped []string
}

func TestMergeJWKSCases(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "merge", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no merge cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(filepath.Join(dir, "case.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var c mergeCase
			if err := yaml.UnmarshalStrict(raw, &c); err != nil {
				t.Fatalf("case.yaml: %v", err)
			}
			kids := func(names []string) []string {
				out := []string{}
				for _, n := range names {
					if kid, ok := strings.CutPrefix(n, "kid:"); ok {
						out = append(out, kid)
						continue
					}
					kid, err := KeyID(testKeys(t, n)[0])
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, kid)
				}
				slices.Sort(out)
				return out
			}
			published, err := os.ReadFile(filepath.Join(dir, "published.json"))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			m, err := MergeJWKS(published, testKeys(t, c.Wanted...), kids(c.Retire), JWKSOptions{LegacyEmptyKID: c.LegacyEmptyKID})
			if err != nil {
				t.Fatal(err)
			}
			for name, pair := range map[string][2][]string{
				"added": {m.Added, kids(c.Added)}, "retained": {m.Retained, kids(c.Retained)},
				"retired": {m.Retired, kids(c.Retired)}, "stripped": {m.Stripped, kids(c.Stripped)},
			} {
				if got := append([]string{}, pair[0]...); !slices.Equal(got, pair[1]) {
					t.Errorf("%s = %v, want %v", name, got, pair[1])
				}
			}
			out, err := MarshalKeySet(m.Set)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(out, []byte(`"d"`)) || bytes.Contains(out, []byte(`"p"`)) || bytes.Contains(out, []byte(`"k"`)) {
				t.Errorf("merged JWKS carries private or symmetric key material:\n%s", out)
			}
			golden(t, filepath.Join("merge", filepath.Base(dir), "expected.json"), out)
		})
	}
}

// The output does not depend on the order of the wanted keys or of the published entries.
func TestMergeJWKSOrderIndependent(t *testing.T) {
	t.Parallel()
	published, err := os.ReadFile(filepath.Join("testdata", "jwks-ec.json"))
	if err != nil {
		t.Fatal(err)
	}
	var set struct{ Keys []json.RawMessage }
	if err := json.Unmarshal(published, &set); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(set.Keys)
	reversed, _ := json.Marshal(set)
	a, err := MergeJWKS(published, testKeys(t, "pub1.pem", "pub2.pem"), nil, JWKSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := MergeJWKS(reversed, testKeys(t, "pub2.pem", "pub1.pem"), nil, JWKSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := MarshalKeySet(a.Set)
	jb, _ := MarshalKeySet(b.Set)
	if !bytes.Equal(ja, jb) {
		t.Errorf("merge depends on input order:\n%s\n---\n%s", ja, jb)
	}
	// Publishing the merged set again changes nothing: apply twice is a no-op.
	again, err := MergeJWKS(ja, testKeys(t, "pub1.pem", "pub2.pem"), nil, JWKSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if jc, _ := MarshalKeySet(again.Set); !bytes.Equal(ja, jc) || again.Changed() {
		t.Errorf("second merge differs (changed=%v):\n%s\n---\n%s", again.Changed(), ja, jc)
	}
}

func TestMergeJWKSRefusesWhatItCannotRead(t *testing.T) {
	t.Parallel()
	_, err := MergeJWKS([]byte("<html>not found</html>"), testKeys(t, "pub1.pem"), nil, JWKSOptions{})
	if err == nil || !strings.Contains(err.Error(), "published JWKS") {
		t.Errorf("err = %v, want one naming the published JWKS", err)
	}
	if _, err := MergeJWKS(nil, []crypto.PublicKey{}, nil, JWKSOptions{}); err == nil {
		t.Error("merge with no wanted key: no error")
	}
}
