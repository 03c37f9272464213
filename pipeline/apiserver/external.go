package apiserver

import "fmt"

// externalPlatform is the platform of clusters whose apiserver the user configures (managed or hand-built control
// planes): the stage only checks that the apiserver serves the issuer, and says which flags to set when it does not.
func externalPlatform(s *Stage) platform {
	return verifyOnly{Stage: s, mismatch: func(served string) error {
		return fmt.Errorf("apiserver serves issuer %q, want %q: configure kube-apiserver with --service-account-issuer=%s as the first issuer (keep %s as a second one so existing tokens stay valid) and add %s to --api-audiences, or pick --cluster-type kubeadm if irsa may edit the static pod manifests", served, s.opts.IssuerURL, s.opts.IssuerURL, served, s.opts.Audience)
	}}
}
