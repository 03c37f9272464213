package apiserver

import "fmt"

// kindPlatform is the platform of kind clusters: the issuer is set when the cluster is created (`irsa
// kind-config`), so the stage only checks that the apiserver serves it.
func kindPlatform(s *Stage) platform {
	return verifyOnly{Stage: s, mismatch: func(served string) error {
		return fmt.Errorf("kind cluster serves issuer %q, want %q: a kind cluster gets its issuer at creation; recreate it with the configuration printed by `irsa kind-config`", served, s.opts.IssuerURL)
	}}
}
