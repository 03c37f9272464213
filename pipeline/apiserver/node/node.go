package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
)

// Defaults of Options: where kubeadm keeps things on a control-plane node.
const (
	DefaultManifestPath = "/etc/kubernetes/manifests/kube-apiserver.yaml"
	// DefaultStateDir holds the backup and the temporary files. It is under /etc/kubernetes, so on the same file
	// system as the manifest (rename is atomic) but outside the manifests directory, whose every file the kubelet
	// reads as a static pod.
	DefaultStateDir = "/etc/kubernetes/irsa"
	DefaultPKIDir   = "/etc/kubernetes/pki"
	// keyFilePrefix starts the names of irsa's key files in the PKI directory (see KeyFileNames).
	keyFilePrefix = "irsa-sa-"
	backupName    = "kube-apiserver.yaml.orig"
)

// KeyFileNames are the names of irsa's key pair in the PKI directory: irsa-sa-<kid prefix>.key and .pub. A new key
// gets new files, so a key rotation keeps the previous public key in --service-account-key-file (Patch keeps the
// flag's values) and tokens signed with it stay valid until irsa is removed.
func KeyFileNames(kid string) (private, public string) {
	short := kid
	if len(short) > 16 {
		short = short[:16]
	}
	return keyFilePrefix + short + ".key", keyFilePrefix + short + ".pub"
}

// Options configure Patch and Restore, which run on a control-plane node (in the node pod).
type Options struct {
	// ManifestPath is the kube-apiserver static pod manifest. Default DefaultManifestPath.
	ManifestPath string
	// StateDir holds the backup of the original manifest and temporary files. Default DefaultStateDir.
	StateDir string
	// PKIDir is where a provided signing key pair is installed. Default DefaultPKIDir.
	PKIDir string
	// IssuerURL and Audience are what the apiserver must issue tokens for (Patch only).
	IssuerURL string
	Audience  string
	// SigningKeyFile is a PEM private key (RSA or ECDSA) to sign tokens with; empty keeps the cluster's own key.
	SigningKeyFile string
	// AcceptOnly (Patch) makes the apiserver accept irsa's tokens without issuing them (see
	// manifest.PatchOptions.AcceptOnly); KeepAccepting (Restore) only demotes (see manifest.Demote).
	AcceptOnly    bool
	KeepAccepting bool
	// Record (Restore) is the value of manifest.RecordAnnotation to restore from when the manifest has none
	// because kubeadm wrote it again from the kubeadm-config irsa changed (manifest.KubeadmManifestRecord); ignored
	// when the manifest has irsa's own record.
	Record string
	// Verify, when set, is called after the new manifest is written; an error puts the previous manifest and keys
	// back. LocalCheck.Verify is the one the node subcommand uses.
	Verify func(ctx context.Context, want Expectation) error
}

// Expectation is what the apiserver must show once it runs the new manifest.
type Expectation struct {
	// Issuer is the issuer it must serve first.
	Issuer string
	// Restoring: the checker's own token may carry an issuer the apiserver no longer accepts.
	Restoring bool
	// SameIssuer: the first issuer did not change, so only a restart of the apiserver shows that it loaded the new
	// manifest.
	SameIssuer bool
}

// Result is what the node operation did; the node subcommand prints it as one JSON line for the stage to read.
type Result struct {
	// Changed is whether the manifest or a key file was written.
	Changed bool `json:"changed"`
	// Manifest is the manifest path; Backup the backup of the original, when there is one.
	Manifest string `json:"manifest"`
	Backup   string `json:"backup,omitempty"`
	// Issuers are the manifest's --service-account-issuer values afterwards, the served one first.
	Issuers []string `json:"issuers"`
	// KeyID is the kid of irsa's signing key when one was installed.
	KeyID string `json:"keyID,omitempty"`
	// RolledBack is set when a written change was undone because it failed verification.
	RolledBack bool `json:"rolledBack,omitempty"`
	// Error is the failure, for the stage reading the result from the pod's log.
	Error string `json:"error,omitempty"`
}

func (o *Options) defaults() {
	if o.ManifestPath == "" {
		o.ManifestPath = DefaultManifestPath
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.PKIDir == "" {
		o.PKIDir = DefaultPKIDir
	}
}

func (o Options) validate() error {
	for name, p := range map[string]string{"manifest": o.ManifestPath, "state directory": o.StateDir, "PKI directory": o.PKIDir} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%s path %q: must be absolute", name, p)
		}
	}
	if filepath.Clean(o.StateDir) == filepath.Dir(filepath.Clean(o.ManifestPath)) {
		return fmt.Errorf("state directory %q: must not be the manifests directory, the kubelet would run every file in it", o.StateDir)
	}
	return nil
}

// fileState remembers a file's content before it is written, so a failure can put it back (nil: it did not exist).
type fileState struct {
	path    string
	content []byte
	mode    fs.FileMode
}

// Patch patches the kube-apiserver manifest on this node (see manifest.Patch): it installs the signing key pair when one
// is given (private key 0600), keeps a backup of the original manifest (taken only from a manifest irsa has not
// patched, so a backup is never replaced by a patched file), writes the new manifest atomically and, if
// opts.Verify fails, puts the previous manifest and keys back. A second call with the same options changes
// nothing.
func Patch(ctx context.Context, opts Options) (Result, error) {
	opts.defaults()
	res := Result{Manifest: opts.ManifestPath}
	if err := opts.validate(); err != nil {
		return res, err
	}
	patch := manifest.PatchOptions{IssuerURL: opts.IssuerURL, Audience: opts.Audience, AcceptOnly: opts.AcceptOnly}
	var keyFiles []fileWrite
	if opts.SigningKeyFile != "" {
		priv, pub, kid, err := readSigningKey(opts.SigningKeyFile)
		if err != nil {
			return res, err
		}
		privName, pubName := KeyFileNames(kid)
		patch.SigningKey = &manifest.KeyFiles{
			PrivateKey: filepath.Join(opts.PKIDir, privName),
			PublicKey:  filepath.Join(opts.PKIDir, pubName),
			KeyID:      kid,
		}
		res.KeyID = kid
		keyFiles = []fileWrite{{path: patch.SigningKey.PublicKey, content: pub, mode: 0o644}}
		if !opts.AcceptOnly {
			// Written before the manifest that names it, so the apiserver never starts without its key.
			keyFiles = append([]fileWrite{{path: patch.SigningKey.PrivateKey, content: priv, mode: 0o600}}, keyFiles...)
		}
	}
	if err := patch.Validate(); err != nil {
		return res, err
	}
	current, err := readManifest(opts.ManifestPath)
	if err != nil {
		return res, err
	}
	patched, changed, err := manifest.Patch(current, patch)
	if err != nil {
		return res, fmt.Errorf("patch %s: %w", opts.ManifestPath, err)
	}
	if res.Issuers, err = manifest.Issuers(patched); err != nil {
		return res, err
	}
	before, err := manifest.Issuers(current)
	if err != nil {
		return res, err
	}

	var writes []fileWrite
	for _, w := range keyFiles {
		old, err := os.ReadFile(w.path)
		if err != nil || !bytes.Equal(old, w.content) {
			writes = append(writes, w)
		}
	}
	if !changed && len(writes) == 0 {
		res.Backup = existing(filepath.Join(opts.StateDir, backupName))
		return res, nil
	}

	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return res, fmt.Errorf("create state directory %s: %w", opts.StateDir, err)
	}
	backup := filepath.Join(opts.StateDir, backupName)
	wasPatched, err := manifest.IsPatched(current)
	if err != nil {
		return res, err
	}
	if !wasPatched {
		// The manifest as kubeadm (or its owner) wrote it. An older backup is stale (the manifest was rewritten
		// since, by kubeadm upgrade for example) and is replaced.
		if err := writeAtomic(backup, current, 0o600, opts.StateDir); err != nil {
			return res, fmt.Errorf("back up %s: %w", opts.ManifestPath, err)
		}
	}
	res.Backup = existing(backup)

	if changed {
		writes = append(writes, fileWrite{path: opts.ManifestPath, content: patched, mode: 0o600})
	}
	want := Expectation{Issuer: res.Issuers[0], SameIssuer: len(before) > 0 && before[0] == res.Issuers[0]}
	if err := applyWrites(ctx, writes, opts, want); err != nil {
		res.RolledBack = errors.Is(err, errRolledBack)
		res.Error = err.Error()
		return res, err
	}
	res.Changed = true
	// A previous irsa private key signs nothing any more; its public key stays for the tokens it signed.
	if err := removeUnreferencedKeys(opts.PKIDir, patched, ".key"); err != nil {
		return res, err
	}
	return res, nil
}

// removeUnreferencedKeys removes irsa's key files with the suffix (".key", ".pub" or "" for both) that the
// manifest does not name.
func removeUnreferencedKeys(dir string, content []byte, suffix string) error {
	matches, err := filepath.Glob(filepath.Join(dir, keyFilePrefix+"*"+suffix))
	if err != nil {
		return fmt.Errorf("list irsa key files in %s: %w", dir, err)
	}
	for _, p := range matches {
		if bytes.Contains(content, []byte(p)) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	return nil
}

// Restore undoes Patch: the manifest goes back to the backup when the backup is what irsa patched (the
// exact original bytes), else to manifest.Unpatch of the current manifest (which keeps changes others made since); irsa's
// key files and the backup are removed afterwards. A manifest irsa has not patched is left alone. With
// opts.KeepAccepting it only demotes (manifest.Demote): the backup stays, and so do irsa's public keys.
func Restore(ctx context.Context, opts Options) (Result, error) {
	opts.defaults()
	res := Result{Manifest: opts.ManifestPath}
	if err := opts.validate(); err != nil {
		return res, err
	}
	current, err := readManifest(opts.ManifestPath)
	if err != nil {
		return res, err
	}
	if opts.Record != "" {
		if current, _, err = manifest.WithRecord(current, opts.Record); err != nil {
			return res, fmt.Errorf("restore %s: %w", opts.ManifestPath, err)
		}
	}
	undo := manifest.Unpatch
	if opts.KeepAccepting {
		undo = manifest.Demote
	}
	restored, changed, err := undo(current)
	if err != nil {
		return res, fmt.Errorf("restore %s: %w", opts.ManifestPath, err)
	}
	backup := filepath.Join(opts.StateDir, backupName)
	res.Backup = existing(backup)
	if !changed {
		res.Issuers, err = manifest.Issuers(current)
		return res, err
	}
	if original, err := os.ReadFile(backup); err == nil && !opts.KeepAccepting && manifest.SamePod(original, restored) {
		restored = original
	}
	if res.Issuers, err = manifest.Issuers(restored); err != nil {
		return res, err
	}
	if len(res.Issuers) == 0 {
		return res, fmt.Errorf("restore %s: the restored manifest has no --service-account-issuer", opts.ManifestPath)
	}
	before, err := manifest.Issuers(current)
	if err != nil {
		return res, err
	}
	want := Expectation{Issuer: res.Issuers[0], Restoring: !opts.KeepAccepting, SameIssuer: len(before) > 0 && before[0] == res.Issuers[0]}
	writes := []fileWrite{{path: opts.ManifestPath, content: restored, mode: 0o600}}
	if err := applyWrites(ctx, writes, opts, want); err != nil {
		res.RolledBack = errors.Is(err, errRolledBack)
		res.Error = err.Error()
		return res, err
	}
	res.Changed = true
	if opts.KeepAccepting {
		// irsa's private keys sign nothing any more; its public keys stay accepted until the full restore.
		return res, removeUnreferencedKeys(opts.PKIDir, restored, ".key")
	}
	// Nothing references irsa's keys any more: remove them (the private keys above all) from the node.
	if err := removeUnreferencedKeys(opts.PKIDir, restored, ""); err != nil {
		return res, err
	}
	res.Backup = ""
	if err := os.Remove(backup); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("remove backup %s: %w", backup, err)
	}
	return res, nil
}

type fileWrite struct {
	path    string
	content []byte
	mode    fs.FileMode
}

var errRolledBack = errors.New("the previous files were put back")

// applyWrites writes files atomically in order (keys before the manifest, so the apiserver never starts with a
// manifest naming a missing key), then verifies. On failure it puts every written file back as it was.
func applyWrites(ctx context.Context, writes []fileWrite, opts Options, want Expectation) error {
	// Only a new manifest restarts the apiserver: key files rewritten under an unchanged manifest (a file someone
	// removed) are read at the next restart and give nothing to verify now.
	manifestChanged := false
	for _, w := range writes {
		manifestChanged = manifestChanged || w.path == opts.ManifestPath
	}
	var saved []fileState
	rollback := func(cause error) error {
		var failed []string
		for i := len(saved) - 1; i >= 0; i-- {
			s := saved[i]
			var err error
			if s.content == nil {
				err = os.Remove(s.path)
			} else {
				err = writeAtomic(s.path, s.content, s.mode, opts.StateDir)
			}
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				failed = append(failed, fmt.Sprintf("%s: %v", s.path, err))
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("%w; putting the previous files back also failed (%s): restore %s from %s by hand", cause, strings.Join(failed, "; "), opts.ManifestPath, filepath.Join(opts.StateDir, backupName))
		}
		return fmt.Errorf("%w (%w)", cause, errRolledBack)
	}
	for _, w := range writes {
		st := fileState{path: w.path, mode: w.mode}
		if old, err := os.ReadFile(w.path); err == nil {
			st.content = old
			if info, err := os.Stat(w.path); err == nil {
				st.mode = info.Mode().Perm()
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return rollback(fmt.Errorf("read %s: %w", w.path, err))
		}
		// The temporary file lives in the state directory, never in the manifests directory.
		if err := os.MkdirAll(filepath.Dir(w.path), 0o755); err != nil {
			return rollback(fmt.Errorf("create directory of %s: %w", w.path, err))
		}
		if err := writeAtomic(w.path, w.content, w.mode, opts.StateDir); err != nil {
			return rollback(fmt.Errorf("write %s: %w", w.path, err))
		}
		saved = append(saved, st)
	}
	if opts.Verify != nil && manifestChanged {
		if err := opts.Verify(ctx, want); err != nil {
			return rollback(fmt.Errorf("verify the apiserver serves issuer %q after writing %s: %w", want.Issuer, opts.ManifestPath, err))
		}
	}
	return nil
}

// writeAtomic writes content to a temporary file in tmpDir, syncs it and renames it over path, so a reader (the
// kubelet) sees the old file or the new one, never half of one. tmpDir must be on path's file system.
func writeAtomic(path string, content []byte, mode fs.FileMode, tmpDir string) error {
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(tmpDir, ".irsa-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s (the state directory must be on the same file system): %w", tmp, path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func readManifest(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read kube-apiserver manifest %s: %w (is this a kubeadm control-plane node, with /etc/kubernetes mounted?)", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read kube-apiserver manifest %s: %w", path, err)
	}
	return b, nil
}

func existing(path string) string {
	if _, err := os.Stat(path); err == nil {
		return path
	}
	return ""
}
