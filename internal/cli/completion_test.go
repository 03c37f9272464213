package cli

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
)

// complete runs cobra's hidden __complete command, as the shell scripts do at each TAB, and returns the candidates
// and the directive line.
func complete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	code, out, errOut := runMain(t, append([]string{"__complete"}, args...)...)
	if code != 0 {
		t.Fatalf("__complete %v: exit %d\n%s", args, code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[:len(lines)-1], lines[len(lines)-1]
}

func TestCompletion(t *testing.T) {
	kube := kubeapiserver.Start(t, kubeapiserver.Options{})
	ctx := context.Background()
	for _, ns := range []string{"team-a", "team-b"} {
		if _, err := kube.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sa := range []string{"app", "api", "batch"} {
		if _, err := kube.Client.CoreV1().ServiceAccounts("team-a").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	kc := []string{"--kubeconfig", kube.Kubeconfig}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"namespaces", append([]string{"bind"}, append(kc, "team")...), []string{"team-a/", "team-b/"}},
		{"service accounts", append([]string{"unbind"}, append(kc, "team-a/a")...), []string{"team-a/api", "team-a/app"}},
		{"doctor", append([]string{"doctor"}, append(kc, "team-a/b")...), []string{"team-a/batch"}},
		{"stages", []string{"apply", "--only", ""}, []string{"keys", "issuer", "provider", "webhook", "bindings", "apiserver", "verify"}},
		{"the next stage", []string{"plan", "--only", "keys,issuer,"}, []string{"keys,issuer,provider", "keys,issuer,webhook", "keys,issuer,bindings", "keys,issuer,apiserver", "keys,issuer,verify"}},
		{"output", []string{"status", "-o", ""}, []string{"text", "json", "yaml"}},
		{"cluster type", []string{"apply", "--cluster-type", ""}, []string{"kubeadm", "kind", "eks-anywhere", "external"}},
		{"no cluster, nothing", []string{"bind", "te"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, directive := complete(t, tc.args...)
			var names []string
			for _, l := range got {
				name, _, _ := strings.Cut(l, "\t")
				names = append(names, name)
			}
			slices.Sort(names)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(names, want) {
				t.Errorf("complete %v = %v (%s), want %v", tc.args, names, directive, want)
			}
		})
	}
}
