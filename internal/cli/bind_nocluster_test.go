package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// A bind whose audience the IAM provider does not list would make a role STS refuses the tokens for: it is refused
// before any write, naming the audience and the way to list it.
func TestBindRefusesAnAudienceTheProviderDoesNotList(t *testing.T) {
	e := newEnv(t)
	e.mustRun("apply")
	code, out, errOut := e.run("bind", "apps/aud", "--policy-arn", readOnly, "--sa-audience", "my-aud")
	if code != 1 || !strings.Contains(errOut, `not audience "my-aud"`) || !strings.Contains(errOut, "add-client-id-to-open-id-connect-provider") {
		t.Errorf("bind with an audience the provider lacks: exit %d\n%s%s", code, out, errOut)
	}
	if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
		t.Errorf("refused bind made mutating calls %v", m)
	}
}

// Without a cluster, bind prints the kubectl command that sets every annotation it would have set, on the
// ServiceAccount the binding resolves to (an ACK controller's from its chart defaults).
func TestBindWithoutClusterPrintsTheWholeAnnotateCommand(t *testing.T) {
	e := newEnv(t)
	e.mustRun("apply")
	out := e.mustRun("bind", "--ack", "s3", "--token-expiration", "2h", "--sts-regional-endpoints", "true")
	want := "kubectl -n ack-system annotate serviceaccount ack-s3-controller eks.amazonaws.com/role-arn=arn:aws:iam::"
	if !strings.Contains(out, want) || !strings.Contains(out, "eks.amazonaws.com/sts-regional-endpoints=true") || !strings.Contains(out, "eks.amazonaws.com/token-expiration=7200") {
		t.Errorf("bind --ack s3 without a cluster:\n%s\nwant %q with the two other annotations", out, want)
	}
}

// irsa bindings lists every provider through which a role bound from the command line (so not in irsa.yaml) admits
// its ServiceAccount: the other cluster's provider named by --trust-provider too.
func TestBindingsListsEveryTrustedProvider(t *testing.T) {
	e := newEnv(t)
	c := clients(t)
	e.mustRun("apply")
	other := createProvider(t, c, "https://oidc-"+e.cluster+"-other.example.com/c2")
	e.mustRun("bind", "apps/multi", "--policy-arn", readOnly, "--trust-provider", other)
	out := e.mustRun("bindings", "-o", "json")
	var listed []struct {
		ServiceAccount   string
		TrustedProviders []string
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		// The report may wrap the list.
		var wrapped struct {
			Bindings []struct {
				ServiceAccount   string
				TrustedProviders []string
			}
		}
		if err2 := json.Unmarshal([]byte(out), &wrapped); err2 != nil {
			t.Fatalf("bindings -o json: %v\n%s", err, out)
		}
		listed = wrapped.Bindings
	}
	for _, l := range listed {
		if l.ServiceAccount == "apps/multi" {
			if len(l.TrustedProviders) != 2 || l.TrustedProviders[1] != other {
				t.Errorf("apps/multi trusted providers %v, want this cluster's and %s", l.TrustedProviders, other)
			}
			return
		}
	}
	t.Errorf("bindings does not list apps/multi:\n%s", out)
}
