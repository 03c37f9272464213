package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/irsa-anywhere/irsa/internal/testpki"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
)

const testIssuer = "https://irsa-demo-oidc.s3.eu-west-1.amazonaws.com/prod-1"

// node lays out a control-plane node's /etc/kubernetes in a temporary directory.
func node(t *testing.T, content []byte) Options {
	t.Helper()
	root := t.TempDir()
	opts := Options{
		ManifestPath: filepath.Join(root, "manifests", "kube-apiserver.yaml"),
		StateDir:     filepath.Join(root, "irsa"),
		PKIDir:       filepath.Join(root, "pki"),
		IssuerURL:    testIssuer,
		Audience:     "sts.amazonaws.com",
	}
	for _, dir := range []string{filepath.Dir(opts.ManifestPath), opts.PKIDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if content != nil {
		if err := os.WriteFile(opts.ManifestPath, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return opts
}

func TestPatchNodeThenRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	original := readFile(t, "../manifest/testdata/inputs/kubeadm.yaml")
	opts := node(t, original)
	var verified []string
	opts.Verify = func(_ context.Context, want Expectation) error {
		verified = append(verified, want.Issuer)
		return nil
	}

	res, err := Patch(ctx, opts)
	if err != nil {
		t.Fatalf("Patch: %v", err)
	}
	want, _, _ := manifest.Patch(original, manifest.PatchOptions{IssuerURL: testIssuer, Audience: "sts.amazonaws.com"})
	if !res.Changed || res.Issuers[0] != testIssuer || res.Backup == "" {
		t.Errorf("result %+v: want changed, issuer first, a backup", res)
	}
	if got := readFile(t, opts.ManifestPath); string(got) != string(want) {
		t.Errorf("manifest is not Patch(original):\n%s", got)
	}
	if got := readFile(t, res.Backup); string(got) != string(original) {
		t.Errorf("backup is not the original manifest")
	}
	assertMode(t, opts.ManifestPath, 0o600)
	assertOnlyManifest(t, opts)
	if len(verified) != 1 || verified[0] != testIssuer {
		t.Errorf("Verify called with %q, want once with %q", verified, testIssuer)
	}

	// Second run: nothing to do, nothing written, nothing verified.
	before := stat(t, opts.ManifestPath)
	res, err = Patch(ctx, opts)
	if err != nil || res.Changed {
		t.Fatalf("second Patch: changed=%v err=%v, want no change", res.Changed, err)
	}
	if after := stat(t, opts.ManifestPath); !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("second Patch rewrote the manifest")
	}
	if len(verified) != 1 {
		t.Errorf("second Patch verified again")
	}

	res, err = Restore(ctx, opts)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !res.Changed || res.Issuers[0] != "https://kubernetes.default.svc.cluster.local" {
		t.Errorf("restore result %+v: want changed with the kubeadm issuer first", res)
	}
	if got := readFile(t, opts.ManifestPath); string(got) != string(original) {
		t.Errorf("restored manifest differs from the original:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(opts.StateDir, backupName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("backup still there after restore: %v", err)
	}
	if !res.Changed || verified[len(verified)-1] != "https://kubernetes.default.svc.cluster.local" {
		t.Errorf("restore verified %q, want the original issuer", verified)
	}

	// Restoring again: nothing to do.
	if res, err := Restore(ctx, opts); err != nil || res.Changed {
		t.Errorf("second Restore: changed=%v err=%v", res.Changed, err)
	}
}

func TestPatchNodeKeepsTheOriginalBackup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	original := readFile(t, "../manifest/testdata/inputs/kubeadm.yaml")
	opts := node(t, original)
	if _, err := Patch(ctx, opts); err != nil {
		t.Fatal(err)
	}
	// A new issuer (migration): the manifest is already patched, so the backup must stay the original.
	opts.IssuerURL = "https://oidc.example.com/prod-1-v2"
	res, err := Patch(ctx, opts)
	if err != nil || !res.Changed {
		t.Fatalf("migration Patch: %+v %v", res, err)
	}
	if got := readFile(t, res.Backup); string(got) != string(original) {
		t.Errorf("backup was overwritten by a patched manifest")
	}
	want := []string{"https://oidc.example.com/prod-1-v2", testIssuer, "https://kubernetes.default.svc.cluster.local"}
	if strings.Join(res.Issuers, " ") != strings.Join(want, " ") {
		t.Errorf("issuers %q, want %q", res.Issuers, want)
	}
	// Restore goes all the way back to the original.
	if _, err := Restore(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, opts.ManifestPath); string(got) != string(original) {
		t.Errorf("restore after migration did not give back the original")
	}
}

func TestRestoreNodeWithoutBackupUsesTheRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	original := readFile(t, "../manifest/testdata/inputs/kubeadm.yaml")
	opts := node(t, original)
	res, err := Patch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(res.Backup); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, opts); err != nil {
		t.Fatalf("Restore without backup: %v", err)
	}
	if got := readFile(t, opts.ManifestPath); string(got) != string(original) {
		t.Errorf("restore from the record differs from the original:\n%s", got)
	}
}

func TestPatchNodeProvidedSigningKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, key := range map[string][]byte{"rsa": testpki.RSAKeyPEM(t), "ecdsa": testpki.ECKeyPEM(t)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			original := readFile(t, "../manifest/testdata/inputs/kubeadm.yaml")
			opts := node(t, original)
			opts.SigningKeyFile = filepath.Join(t.TempDir(), "signing.key")
			if err := os.WriteFile(opts.SigningKeyFile, key, 0o600); err != nil {
				t.Fatal(err)
			}
			res, err := Patch(ctx, opts)
			if err != nil {
				t.Fatalf("Patch: %v", err)
			}
			_, _, kid, err := readSigningKey(opts.SigningKeyFile)
			if err != nil {
				t.Fatal(err)
			}
			privName, pubName := KeyFileNames(kid)
			priv := filepath.Join(opts.PKIDir, privName)
			pub := filepath.Join(opts.PKIDir, pubName)
			if got := readFile(t, priv); string(got) != string(key) {
				t.Errorf("%s is not the provided key", priv)
			}
			assertMode(t, priv, 0o600)
			assertMode(t, pub, 0o644)
			if res.KeyID != kid || kid == "" {
				t.Errorf("key ID %q, want %q", res.KeyID, kid)
			}
			written := string(readFile(t, opts.ManifestPath))
			for _, want := range []string{
				"--service-account-signing-key-file=" + priv,
				"--service-account-key-file=" + pub,
				"--service-account-key-file=/etc/kubernetes/pki/sa.pub",
				manifest.SigningKeyAnnotation + ": " + kid,
			} {
				if !strings.Contains(written, want) {
					t.Errorf("manifest lacks %q", want)
				}
			}
			if res, err := Patch(ctx, opts); err != nil || res.Changed {
				t.Errorf("second Patch with the same key: changed=%v err=%v", res.Changed, err)
			}
			if _, err := Restore(ctx, opts); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{priv, pub} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s still there after restore (%v)", p, err)
				}
			}
		})
	}
}

func TestPatchNodeRollsBackWhenVerificationFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	original := readFile(t, "../manifest/testdata/inputs/kubeadm.yaml")
	opts := node(t, original)
	opts.SigningKeyFile = filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(opts.SigningKeyFile, testpki.ECKeyPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	opts.Verify = func(context.Context, Expectation) error {
		return errors.New("discovery still shows https://kubernetes.default.svc.cluster.local")
	}
	res, err := Patch(ctx, opts)
	if err == nil || !res.RolledBack || !strings.Contains(err.Error(), "put back") || !strings.Contains(err.Error(), "still shows") {
		t.Fatalf("Patch = %+v, %v; want a rolled-back error saying what was observed", res, err)
	}
	if got := readFile(t, opts.ManifestPath); string(got) != string(original) {
		t.Errorf("manifest not put back after failed verification")
	}
	if left, _ := filepath.Glob(filepath.Join(opts.PKIDir, "irsa-*")); len(left) != 0 {
		t.Errorf("key files left behind after rollback: %q", left)
	}
	assertOnlyManifest(t, opts)
}

func TestRestoreNodeRollsBackWhenVerificationFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := node(t, readFile(t, "../manifest/testdata/inputs/kubeadm.yaml"))
	if _, err := Patch(ctx, opts); err != nil {
		t.Fatal(err)
	}
	patched := readFile(t, opts.ManifestPath)
	opts.Verify = func(context.Context, Expectation) error { return errors.New("apiserver not ready") }
	if _, err := Restore(ctx, opts); err == nil {
		t.Fatal("Restore succeeded although verification failed")
	}
	if got := readFile(t, opts.ManifestPath); string(got) != string(patched) {
		t.Errorf("patched manifest not put back after failed restore")
	}
	if _, err := os.Stat(filepath.Join(opts.StateDir, backupName)); err != nil {
		t.Errorf("backup lost after a failed restore: %v", err)
	}
}

func TestNodeBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kubeadm := readFile(t, "../manifest/testdata/inputs/kubeadm.yaml")
	tests := []struct {
		name     string
		manifest []byte
		modify   func(*Options)
		want     string
	}{
		{"no manifest", nil, func(*Options) {}, "is this a kubeadm control-plane node"},
		{"state dir is the manifests dir", kubeadm, func(o *Options) { o.StateDir = filepath.Dir(o.ManifestPath) }, "must not be the manifests directory"},
		{"relative manifest path", kubeadm, func(o *Options) { o.ManifestPath = "kube-apiserver.yaml" }, "must be absolute"},
		{"missing signing key", kubeadm, func(o *Options) { o.SigningKeyFile = "/nonexistent/sa.key" }, "read signing key /nonexistent/sa.key"},
		{"public key given as signing key", kubeadm, func(o *Options) {
			o.SigningKeyFile = filepath.Join(filepath.Dir(o.PKIDir), "sa.pub")
			_ = os.WriteFile(o.SigningKeyFile, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600)
		}, `no PEM private key block`},
		{"http issuer", kubeadm, func(o *Options) { o.IssuerURL = "http://x" }, "must use https"},
		{"not a pod", []byte("kind: ConfigMap\napiVersion: v1\n"), func(*Options) {}, `kind "ConfigMap"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := node(t, tt.manifest)
			tt.modify(&opts)
			_, err := Patch(ctx, opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Patch error = %v, want one containing %q", err, tt.want)
			}
			if tt.manifest != nil && filepath.IsAbs(opts.ManifestPath) {
				if got := readFile(t, opts.ManifestPath); string(got) != string(tt.manifest) {
					t.Errorf("manifest changed although Patch failed")
				}
			}
		})
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	if got := stat(t, path).Mode().Perm(); got != want {
		t.Errorf("%s has mode %v, want %v", path, got, want)
	}
}

// assertOnlyManifest checks that no temporary file was ever left in the manifests directory.
func assertOnlyManifest(t *testing.T, opts Options) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(opts.ManifestPath))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(opts.ManifestPath) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("manifests directory holds %q, want only the manifest", names)
	}
}

func stat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// Run's output is what the stage reads back from the node pod's log, on success and on failure.
func TestRunNodeResultLine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := node(t, readFile(t, "../manifest/testdata/inputs/kubeadm.yaml"))
	var out strings.Builder
	out.WriteString("some log line before\n")
	if err := Run(ctx, PatchCommand, opts, 0, &out); err != nil {
		t.Fatalf("Run: %v", err)
	}
	res, err := LastResult([]byte(out.String()))
	if err != nil || !res.Changed || res.Issuers[0] != testIssuer || res.Error != "" {
		t.Errorf("result read back = %+v, %v", res, err)
	}

	out.Reset()
	opts.IssuerURL = "http://not-https"
	err = Run(ctx, PatchCommand, opts, 0, &out)
	res, perr := LastResult([]byte(out.String()))
	if err == nil || perr != nil || !strings.Contains(res.Error, "must use https") || res.Manifest != opts.ManifestPath {
		t.Errorf("failed Run: err=%v, result %+v (%v); want the error in the result line", err, res, perr)
	}

	out.Reset()
	if err := Run(ctx, "rm-rf", opts, 0, &out); err == nil || !strings.Contains(out.String(), `node command \"rm-rf\"`) {
		t.Errorf("unknown command: %v, output %q", err, out.String())
	}
	if _, err := LastResult([]byte("no json here\n{not json}\n")); err == nil {
		t.Errorf("LastResult found a result in a log without one")
	}
}

// A new key gets new files: the previous public key stays trusted (tokens it signed stay valid), the previous
// private key goes, and restore removes them all.
func TestPatchNodeKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := node(t, readFile(t, "../manifest/testdata/inputs/kubeadm.yaml"))
	keyDir := t.TempDir()
	var names [][2]string
	for i, key := range [][]byte{testpki.ECKeyPEM(t), testpki.RSAKeyPEM(t)} {
		opts.SigningKeyFile = filepath.Join(keyDir, fmt.Sprintf("key-%d.pem", i))
		if err := os.WriteFile(opts.SigningKeyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := Patch(ctx, opts)
		if err != nil || !res.Changed {
			t.Fatalf("Patch with key %d: %+v %v", i, res, err)
		}
		priv, pub := KeyFileNames(res.KeyID)
		names = append(names, [2]string{filepath.Join(opts.PKIDir, priv), filepath.Join(opts.PKIDir, pub)})
	}
	written := string(readFile(t, opts.ManifestPath))
	for _, want := range []string{
		"--service-account-signing-key-file=" + names[1][0],
		"--service-account-key-file=/etc/kubernetes/pki/sa.pub",
		"--service-account-key-file=" + names[0][1],
		"--service-account-key-file=" + names[1][1],
	} {
		if !strings.Contains(written, want) {
			t.Errorf("manifest after rotation lacks %q", want)
		}
	}
	if _, err := os.Stat(names[0][0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("previous private key %s still on the node (%v)", names[0][0], err)
	}
	for _, p := range []string{names[0][1], names[1][0], names[1][1]} {
		stat(t, p)
	}
	if _, err := Restore(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(opts.PKIDir, "irsa-*")); len(left) != 0 {
		t.Errorf("key files left after restore: %q", left)
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

// A manifest kubeadm wrote again from the kubeadm-config irsa changed (`kubeadm upgrade`) has irsa's flags and no
// irsa record: Restore leaves it alone, unless given the record the stage derives from kubeadm-config.
func TestRestoreNodeRewrittenByKubeadm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	original := readFile(t, "../manifest/testdata/inputs/kubeadm.yaml")
	opts := node(t, original)
	res, err := Patch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	rewritten := rewriteAsKubeadm(t, opts)
	if r, err := Restore(ctx, opts); err != nil || r.Changed || r.Issuers[0] != testIssuer {
		t.Fatalf("Restore without a record = %+v, %v; want no change", r, err)
	}
	opts.Record = kubeadmDefaultsRecord(t)
	r, err := Restore(ctx, opts)
	if err != nil || !r.Changed || r.Issuers[0] != "https://kubernetes.default.svc.cluster.local" {
		t.Fatalf("Restore with the kubeadm record = %+v, %v; want the original issuer back", r, err)
	}
	// The backup irsa took at the first patch is the original: Restore writes it back byte for byte.
	if got := readFile(t, opts.ManifestPath); string(got) != string(original) {
		t.Errorf("restored manifest differs from the original:\n%s", got)
	}
	if _, err := os.Stat(res.Backup); !os.IsNotExist(err) {
		t.Errorf("backup %s still there after the full restore: %v", res.Backup, err)
	}
	// Bad record: refused, manifest untouched.
	opts2 := node(t, rewritten)
	opts2.Record = `{"flags":{}}`
	if _, err := Restore(ctx, opts2); err == nil || !strings.Contains(err.Error(), "no entry for --service-account-issuer") {
		t.Errorf("Restore with a record missing flags: %v", err)
	}
	if got := readFile(t, opts2.ManifestPath); string(got) != string(rewritten) {
		t.Errorf("a refused restore changed the manifest")
	}
}

// A later patch of a manifest kubeadm rewrote (a key rotation after `kubeadm upgrade`) records the original flags it
// is given, not irsa's: restoring afterwards gives the cluster's own issuer back.
func TestPatchNodeRewrittenByKubeadmRecordsTheOriginalFlags(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	original := readFile(t, "../manifest/testdata/inputs/kubeadm.yaml")
	opts := node(t, original)
	if _, err := Patch(ctx, opts); err != nil {
		t.Fatal(err)
	}
	rewriteAsKubeadm(t, opts)
	if err := os.Remove(filepath.Join(opts.StateDir, backupName)); err != nil {
		t.Fatal(err)
	}
	opts.Record = kubeadmDefaultsRecord(t)
	opts.IssuerURL = "https://issuer.example.com/next"
	if _, err := Patch(ctx, opts); err != nil {
		t.Fatal(err)
	}
	opts.Record = ""
	r, err := Restore(ctx, opts)
	if err != nil || len(r.Issuers) != 1 || r.Issuers[0] != "https://kubernetes.default.svc.cluster.local" {
		t.Fatalf("Restore after patching a rewritten manifest = %+v, %v; want only the cluster's own issuer", r, err)
	}
}

// rewriteAsKubeadm writes the node's patched manifest again without irsa's record, as `kubeadm upgrade` does from the
// kubeadm-config irsa changed, and returns it.
func rewriteAsKubeadm(t *testing.T, opts Options) []byte {
	t.Helper()
	pod, err := manifest.Parse(readFile(t, opts.ManifestPath))
	if err != nil {
		t.Fatal(err)
	}
	delete(pod.Annotations, manifest.RecordAnnotation)
	rewritten, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(opts.ManifestPath, rewritten, 0o600); err != nil {
		t.Fatal(err)
	}
	return rewritten
}

// kubeadmDefaultsRecord is the record of the flags kubeadm writes from a ClusterConfiguration whose extraArgs had
// none of them before irsa (kubeadm init's defaults).
func kubeadmDefaultsRecord(t *testing.T) string {
	t.Helper()
	rec, err := manifest.KubeadmManifestRecord(manifest.KubeadmArgs{}, readFile(t, "../manifest/testdata/kubeadm-config/defaults-first-patch/expected.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}
