package cli

import (
	"strings"
	"testing"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
)

// rotate-key refuses, before any write, what it cannot rotate: a cluster whose key irsa does not install, the
// cluster's own key, an EKS Anywhere cluster (the plan says what the user does there). The rotation itself needs a
// kubelet to run the node pods: the e2e scenario runs it on a kubeadm node (TestIRSA/.../rotate-key).
func TestRotateKeyRefusals(t *testing.T) {
	e := newEnv(t)
	kube := kubeapiserver.Start(t, kubeapiserver.Options{Issuer: e.issuer})
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"external cluster", []string{"rotate-key", "stage", "--cluster-type", "external", "--signing-key", "generate"}, "cluster type external: irsa rotates the key only where it installs it"},
		{"eks anywhere", []string{"rotate-key", "stage", "--cluster-type", "eks-anywhere", "--signing-key", "cluster"}, "run `irsa sync --retire KID`"},
		{"cluster's own key", []string{"rotate-key", "promote", "--cluster-type", "kubeadm", "--signing-key", "cluster"}, "rotate-key rotates the key irsa keeps in a key directory"},
		{"key file", []string{"rotate-key", "retire", "--cluster-type", "kubeadm", "--signing-key", e.keyDir + "/sa-signer.key"}, "give the new file to --signing-key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := e.run(append(tc.args, "--kubeconfig", kube.Kubeconfig)...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("irsa %v: exit %d, want %q\n%s%s", tc.args, code, tc.want, out, errOut)
			}
			if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
				t.Errorf("refused rotate-key wrote: %v", m)
			}
		})
	}
}
