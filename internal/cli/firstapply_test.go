package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/irsa-anywhere/irsa/pipeline/keys"
)

// The first AWS-only run with a key directory that holds no key yet (the runbook's first step): plan says what the
// issuer will publish once the keys stage has made the key and exits 2; apply makes the key, then publishes it.
func TestFirstApplyWithANewKeyDirectory(t *testing.T) {
	e := newEnv(t)
	e.keyDir = filepath.Join(t.TempDir(), "new-keys")
	code, out, errOut := e.run("plan")
	if code != 2 || !strings.Contains(out, "keypair") || !strings.Contains(out, "published with the public key the keys stage makes") {
		t.Fatalf("plan with a new key directory: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(e.keyDir); !os.IsNotExist(err) {
		t.Errorf("plan made the key directory (%v)", err)
	}
	e.mustRun("apply")
	if _, err := os.Stat(keys.PairIn(e.keyDir).PublicKeyPath); err != nil {
		t.Errorf("apply made no key: %v", err)
	}
	if code, out, errOut := e.run("plan"); code != 0 {
		t.Errorf("plan after apply: exit %d\n%s%s", code, out, errOut)
	}
}
