package manifest

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the expected files in testdata/ from the current output")

// manifestCase is testdata/manifest/<case>/case.yaml; the directory also holds input.yaml and expected.yaml.
type manifestCase struct {
	// Operation is "patch", "unpatch" or "demote".
	Operation  string    `json:"operation"`
	IssuerURL  string    `json:"issuerURL"`
	Audience   string    `json:"audience"`
	SigningKey *KeyFiles `json:"signingKey"`
	AcceptOnly bool      `json:"acceptOnly"`
	// RetireOtherKeys is PatchOptions.RetireOtherKeys.
	RetireOtherKeys bool `json:"retireOtherKeys"`
	// Changed is whether the operation must report a change; when false the output must be the input, byte for
	// byte.
	Changed bool `json:"changed"`
}

func TestManifestGolden(t *testing.T) {
	t.Parallel()
	dirs, err := filepath.Glob("testdata/manifest/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases in testdata/manifest: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			var c manifestCase
			if err := yaml.UnmarshalStrict(readFile(t, filepath.Join(dir, "case.yaml")), &c); err != nil {
				t.Fatalf("case.yaml: %v", err)
			}
			input := readFile(t, filepath.Join(dir, "input.yaml"))
			opts := PatchOptions{IssuerURL: c.IssuerURL, Audience: c.Audience, SigningKey: c.SigningKey, AcceptOnly: c.AcceptOnly, RetireOtherKeys: c.RetireOtherKeys}

			var got []byte
			var changed bool
			var err error
			switch c.Operation {
			case "patch":
				got, changed, err = Patch(input, opts)
			case "unpatch":
				got, changed, err = Unpatch(input)
			case "demote":
				got, changed, err = Demote(input)
			default:
				t.Fatalf("case.yaml: operation %q, want patch or unpatch", c.Operation)
			}
			if err != nil {
				t.Fatalf("%s: %v", c.Operation, err)
			}
			if changed != c.Changed {
				t.Errorf("%s reported changed=%v, want %v", c.Operation, changed, c.Changed)
			}
			if !c.Changed && string(got) != string(input) {
				t.Errorf("%s without change must return the input byte for byte", c.Operation)
			}
			expectedPath := filepath.Join(dir, "expected.yaml")
			if *update {
				if err := os.WriteFile(expectedPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := readFile(t, expectedPath); string(got) != string(want) {
				t.Errorf("%s output differs from %s:\n--- got\n%s", c.Operation, expectedPath, got)
			}

			if c.Operation != "patch" {
				return
			}
			// Every patched manifest is a fixed point: patching it again changes nothing, byte for byte.
			again, changedAgain, err := Patch(got, opts)
			if err != nil || changedAgain || string(again) != string(got) {
				t.Errorf("second Patch: changed=%v err=%v; want the same bytes and no change", changedAgain, err)
			}
			// Unpatching gives back the manifest as it was before irsa first touched it.
			if patched, _ := IsPatched(input); !patched {
				restored, _, err := Unpatch(got)
				if err != nil {
					t.Fatalf("Unpatch: %v", err)
				}
				// Compared in the `--name=value` form, the one irsa writes its flags in.
				if a, b := podJSON(t, restored), podJSON(t, input); a != b {
					t.Errorf("Unpatch(Patch(input)) differs from input:\n%s\n%s", a, b)
				}
			}
			// The first issuer is the irsa issuer (accept-only: the input's first issuer); every issuer the input had
			// is still accepted.
			issuers, err := Issuers(got)
			if err != nil {
				t.Fatal(err)
			}
			before, _ := Issuers(input)
			wantFirst := c.IssuerURL
			if c.AcceptOnly {
				wantFirst = before[0]
			}
			if len(issuers) == 0 || issuers[0] != wantFirst || !slices.Contains(issuers, c.IssuerURL) {
				t.Errorf("issuers %q: want %q first and %q accepted", issuers, wantFirst, c.IssuerURL)
			}
			for _, old := range before {
				if !strings.Contains(strings.Join(issuers, "\n"), old) {
					t.Errorf("issuers %q dropped the previous issuer %q", issuers, old)
				}
			}
		})
	}
}

// The realistic inputs written by kubeadm must be exactly what the Pod type serializes to, or the golden diffs would
// show reformatting rather than irsa's change. (eks-anywhere.yaml and hand-written.yaml come from older kubeadm and
// from a person, and are expected to change format.)
func TestKubeadmInputsAreSerializerOutput(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"kubeadm.yaml", "kind.yaml"} {
		in := readFile(t, filepath.Join("testdata/inputs", name))
		pod, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := yaml.Marshal(pod)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != string(in) {
			t.Errorf("%s does not round-trip through the Pod type:\n%s", name, out)
		}
	}
}

func TestPatchRejectsBadInput(t *testing.T) {
	t.Parallel()
	kubeadm := readFile(t, "testdata/inputs/kubeadm.yaml")
	good := PatchOptions{IssuerURL: "https://oidc.example.com/c1", Audience: "sts.amazonaws.com"}
	tests := []struct {
		name     string
		manifest string
		modify   func(*PatchOptions)
		want     string
	}{
		{"http issuer", string(kubeadm), func(o *PatchOptions) { o.IssuerURL = "http://oidc.example.com" }, "must use https"},
		{"issuer with trailing slash", string(kubeadm), func(o *PatchOptions) { o.IssuerURL += "/" }, "must not end with '/'"},
		{"issuer with query", string(kubeadm), func(o *PatchOptions) { o.IssuerURL += "?a=b" }, "must not have a query"},
		{"no audience", string(kubeadm), func(o *PatchOptions) { o.Audience = "" }, `audience ""`},
		{"relative key path", string(kubeadm), func(o *PatchOptions) {
			o.SigningKey = &KeyFiles{PrivateKey: "irsa-sa.key", PublicKey: "/p/irsa-sa.pub"}
		}, "absolute paths"},
		{"not yaml", "{{{", func(*PatchOptions) {}, "parse kube-apiserver manifest"},
		{"a deployment", "apiVersion: apps/v1\nkind: Deployment\n", func(*PatchOptions) {}, `kind "Deployment"`},
		{"unknown field", strings.Replace(string(kubeadm), "  hostNetwork: true\n", "  hostNetwork: true\n  hostNetwrok: true\n", 1), func(*PatchOptions) {}, "hostNetwrok"},
		{"shell wrapper", strings.Replace(string(kubeadm), "    - kube-apiserver\n", "    - /bin/sh\n", 1), func(*PatchOptions) {}, `runs "/bin/sh", not kube-apiserver directly`},
		{"no apiserver container", strings.Replace(string(kubeadm), "    name: kube-apiserver\n", "    name: apiserver\n", 1), func(*PatchOptions) {}, `no container named "kube-apiserver"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := good
			tt.modify(&o)
			_, _, err := Patch([]byte(tt.manifest), o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Patch error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestUnpatchWithoutRecordChangesNothing(t *testing.T) {
	t.Parallel()
	in := readFile(t, "testdata/inputs/kubeadm.yaml")
	out, changed, err := Unpatch(in)
	if err != nil || changed || string(out) != string(in) {
		t.Errorf("Unpatch of an unpatched manifest: changed=%v err=%v, want the input unchanged", changed, err)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func podJSON(t *testing.T, manifest []byte) string {
	t.Helper()
	pod, err := Parse(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		c.Command, c.Args = joinFlagValues(c.Command), joinFlagValues(c.Args)
	}
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// joinFlagValues rewrites `--name value` pairs as `--name=value`.
func joinFlagValues(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if strings.HasPrefix(args[i], "--") && !strings.Contains(args[i], "=") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			out = append(out, args[i]+"="+args[i+1])
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}
