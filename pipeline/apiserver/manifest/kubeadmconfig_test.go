package manifest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
)

// kubeadmConfigCase is testdata/kubeadm-config/<case>/case.yaml; the folder also holds input.yaml and
// expected.yaml.
type kubeadmConfigCase struct {
	// Operation is "patch" (the args of the manifest testdata/inputs/<Manifest> patched with the options) or
	// "restore" (the args of Record).
	Operation  string              `json:"operation"`
	Manifest   string              `json:"manifest"`
	IssuerURL  string              `json:"issuerURL"`
	Audience   string              `json:"audience"`
	SigningKey *KeyFiles           `json:"signingKey"`
	Record     map[string][]string `json:"record"`
	Changed    bool                `json:"changed"`
}

func TestKubeadmConfigGolden(t *testing.T) {
	t.Parallel()
	dirs, err := filepath.Glob("testdata/kubeadm-config/*/case.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases in testdata/kubeadm-config: %v", err)
	}
	for _, file := range dirs {
		dir := filepath.Dir(file)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			var c kubeadmConfigCase
			if err := yaml.UnmarshalStrict(readFile(t, filepath.Join(dir, "case.yaml")), &c); err != nil {
				t.Fatalf("case.yaml: %v", err)
			}
			input := readFile(t, filepath.Join(dir, "input.yaml"))
			var args KubeadmArgs
			var patched []byte
			switch c.Operation {
			case "patch":
				patched, _, err = Patch(readFile(t, filepath.Join("testdata/inputs", c.Manifest)), PatchOptions{IssuerURL: c.IssuerURL, Audience: c.Audience, SigningKey: c.SigningKey})
				if err != nil {
					t.Fatal(err)
				}
				pod, err := Parse(patched)
				if err != nil {
					t.Fatal(err)
				}
				if args, err = PodKubeadmArgs(pod); err != nil {
					t.Fatal(err)
				}
			case "restore":
				args = KubeadmArgs(c.Record)
			default:
				t.Fatalf("case.yaml: operation %q, want patch or restore", c.Operation)
			}
			got, changed, err := SetClusterConfigurationArgs(input, args)
			if err != nil {
				t.Fatal(err)
			}
			if changed != c.Changed {
				t.Errorf("changed=%v, want %v", changed, c.Changed)
			}
			if !c.Changed && string(got) != string(input) {
				t.Errorf("without change the input must come back byte for byte")
			}
			expectedPath := filepath.Join(dir, "expected.yaml")
			if *update {
				if err := os.WriteFile(expectedPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := readFile(t, expectedPath); string(got) != string(want) {
				t.Errorf("output differs from %s:\n--- got\n%s", expectedPath, got)
			}
			back, err := ClusterConfigurationArgs(got)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Equal(args) {
				t.Errorf("ClusterConfigurationArgs of the output = %v, want %v", back, args)
			}
			if c.Operation != "patch" {
				return
			}
			// The oracle: the manifest kubeadm itself writes from this ClusterConfiguration, as `kubeadm upgrade`
			// does, has the flags irsa wrote into the manifest.
			fromConfig := kubeadmManifest(t, got)
			regenerated, err := Parse(fromConfig)
			if err != nil {
				t.Fatal(err)
			}
			fromKubeadm, err := PodKubeadmArgs(regenerated)
			if err != nil {
				t.Fatal(err)
			}
			if !fromKubeadm.Equal(args) {
				t.Errorf("kubeadm regenerates the apiserver with %v, irsa's manifest has %v", fromKubeadm, args)
			}

			// Teardown of a node kubeadm rewrote: the manifest above has irsa's flags and no irsa record. Restoring it
			// with KubeadmManifestRecord of the original extraArgs must give the flags kubeadm writes from the
			// original ClusterConfiguration: the second oracle.
			original, err := ClusterConfigurationArgs(input)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := KubeadmManifestRecord(original, got)
			if err != nil {
				t.Fatal(err)
			}
			withRecord, changed, err := WithRecord(fromConfig, rec)
			if err != nil || !changed {
				t.Fatalf("WithRecord = %v, %v; want the record added", changed, err)
			}
			restored, changed, err := Unpatch(withRecord)
			if err != nil || !changed {
				t.Fatalf("Unpatch of the rewritten manifest = %v, %v; want a change", changed, err)
			}
			before, err := Parse(kubeadmManifest(t, input))
			if err != nil {
				t.Fatal(err)
			}
			after, err := Parse(restored)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := after.Annotations[RecordAnnotation]; ok {
				t.Errorf("restored manifest keeps %s", RecordAnnotation)
			}
			b, err := Container(before)
			if err != nil {
				t.Fatal(err)
			}
			a, err := Container(after)
			if err != nil {
				t.Fatal(err)
			}
			// kubeadm writes its flags sorted by name; Unpatch puts each value back where irsa's was.
			if want, got := slices.Sorted(slices.Values(b.Command)), slices.Sorted(slices.Values(a.Command)); !slices.Equal(want, got) {
				t.Errorf("restored command\n  %v\nkubeadm writes from the original configuration\n  %v", got, want)
			}
		})
	}
}

// kubeadmManifest runs the real kubeadm v1.37.2 (built by hack/build-kubernetes.sh) in dry-run mode on the
// ClusterConfiguration and returns the kube-apiserver manifest it would write. KUBEADM_INIT_DRYRUN_DIR keeps it
// out of /etc/kubernetes.
func kubeadmManifest(t *testing.T, clusterConfiguration []byte) []byte {
	t.Helper()
	bin := filepath.Join(kubeapiserver.BinDir(), "kubeadm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%v: run hack/build-kubernetes.sh (or set IRSA_K8S_BIN)", err)
	}
	dir := t.TempDir()
	init := "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 192.168.56.10\n  bindPort: 6443\nnodeRegistration:\n  name: node1\n  criSocket: unix:///nonexistent.sock\n---\n"
	cfg := filepath.Join(dir, "kubeadm.yaml")
	if err := os.WriteFile(cfg, []byte(init+string(clusterConfiguration)), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "dry-run")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin, "init", "phase", "control-plane", "apiserver", "--config", cfg, "--dry-run")
	cmd.Env = append(os.Environ(), "KUBEADM_INIT_DRYRUN_DIR="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubeadm: %v\n%s", err, b)
	} else if !strings.Contains(string(b), "kube-apiserver") {
		t.Fatalf("kubeadm wrote no kube-apiserver manifest:\n%s", b)
	}
	return readFile(t, filepath.Join(out, "kube-apiserver.yaml"))
}

func TestClusterConfigurationRejectsV1beta3(t *testing.T) {
	t.Parallel()
	doc := []byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n  extraArgs:\n    service-account-issuer: https://a\n")
	_, _, err := SetClusterConfigurationArgs(doc, KubeadmArgs{"service-account-issuer": {"https://b", "https://a"}})
	if err == nil || !strings.Contains(err.Error(), "kubeadm.k8s.io/v1beta3") {
		t.Errorf("err = %v, want one naming kubeadm.k8s.io/v1beta3", err)
	}
}
