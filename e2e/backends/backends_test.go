package backends

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/irsa-anywhere/irsa/e2e/aws/realaws"
	"github.com/irsa-anywhere/irsa/e2e/framework"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		want    Selection
		wantErr []string
	}{
		{"defaults", nil, Selection{Cluster: "host", AWS: "moto"}, nil},
		{"host+moto", map[string]string{ClusterEnv: "host", AWSEnv: "moto"}, Selection{Cluster: "host", AWS: "moto"}, nil},
		{"host+localstack", map[string]string{ClusterEnv: "host", AWSEnv: "localstack"}, Selection{Cluster: "host", AWS: "localstack"}, nil},
		{"host+aws", map[string]string{ClusterEnv: "host", AWSEnv: "aws"}, Selection{Cluster: "host", AWS: "aws"}, nil},
		{"kind+moto", map[string]string{ClusterEnv: "kind", AWSEnv: "moto"}, Selection{Cluster: "kind", AWS: "moto"}, nil},
		{"kind+localstack", map[string]string{ClusterEnv: "kind", AWSEnv: "localstack"}, Selection{Cluster: "kind", AWS: "localstack"}, nil},
		{"kind+aws keep", map[string]string{ClusterEnv: "kind", AWSEnv: "aws", KeepEnv: "1"}, Selection{Cluster: "kind", AWS: "aws", Keep: true}, nil},
		{"kind alone takes moto", map[string]string{ClusterEnv: "kind"}, Selection{Cluster: "kind", AWS: "moto"}, nil},
		{"bad cluster", map[string]string{ClusterEnv: "minikube"}, Selection{}, []string{`E2E_CLUSTER="minikube": want one of host, kind`}},
		{"bad aws", map[string]string{AWSEnv: "gcp"}, Selection{}, []string{`E2E_AWS="gcp": want one of moto, localstack, aws`}},
		{"case matters", map[string]string{ClusterEnv: "Kind", AWSEnv: "LocalStack"}, Selection{}, []string{
			`E2E_CLUSTER="Kind": want one of host, kind`, `E2E_AWS="LocalStack": want one of moto, localstack, aws`}},
		{"bad keep", map[string]string{KeepEnv: "yes"}, Selection{}, []string{`KEEP="yes": want 1 or 0`}},
		{"kind+localstack built here", map[string]string{ClusterEnv: "kind", AWSEnv: "localstack", NodeImageEnv: "irsa.local/kind/node:v1.37.2", AWSImageEnv: "irsa.local/e2e/localstack:2026.3.0"},
			Selection{Cluster: "kind", AWS: "localstack", NodeImage: "irsa.local/kind/node:v1.37.2", AWSImage: "irsa.local/e2e/localstack:2026.3.0"}, nil},
		{"moto image on kind", map[string]string{ClusterEnv: "kind", AWSImageEnv: "irsa.local/e2e/moto:5.2.2"}, Selection{Cluster: "kind", AWS: "moto", AWSImage: "irsa.local/e2e/moto:5.2.2"}, nil},
		{"node image needs kind", map[string]string{NodeImageEnv: "irsa.local/kind/node:v1.37.2"}, Selection{}, []string{
			`E2E_KIND_NODE_IMAGE="irsa.local/kind/node:v1.37.2": only kind runs a node image, not E2E_CLUSTER="host"`}},
		{"node image needs a tag", map[string]string{ClusterEnv: "kind", NodeImageEnv: "irsa.local/kind/node"}, Selection{}, []string{
			`E2E_KIND_NODE_IMAGE="irsa.local/kind/node": want an image reference with an explicit tag or digest`}},
		{"moto image on host", map[string]string{AWSImageEnv: "irsa.local/e2e/moto:5.2.2"}, Selection{}, []string{
			`E2E_AWS_IMAGE="irsa.local/e2e/moto:5.2.2": only LocalStack, or moto on kind, runs an image, not E2E_AWS="moto" with E2E_CLUSTER="host"`}},
		{"image for real AWS", map[string]string{ClusterEnv: "kind", AWSEnv: "aws", AWSImageEnv: "irsa.local/e2e/moto:5.2.2"}, Selection{}, []string{
			`E2E_AWS_IMAGE="irsa.local/e2e/moto:5.2.2": only LocalStack, or moto on kind, runs an image`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := FromEnv(env(tc.env))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("FromEnv = %+v, want an error", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("FromEnv: %v", err)
			}
			if got != tc.want {
				t.Errorf("FromEnv = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// fakeAWS and fakeCluster stand for the constructors' results: the selection logic is what is under test here,
// and the real backends have their own tests.
type fakeAWS struct {
	framework.AWS
	name   string
	closed int
}

func (f *fakeAWS) Close(context.Context) error { f.closed++; return nil }
func (f *fakeAWS) IssuerURL(string) string     { return "" }
func (f *fakeAWS) Region() string              { return "eu-west-1" }

type fakeCluster struct {
	framework.Cluster
	name    string
	aws     framework.AWS
	deleted int
}

func (f *fakeCluster) Delete(context.Context) error { f.deleted++; return nil }

// scenarioRegistry is Docker()'s registry with fakes in place of every constructor, plus what the scenario adds.
func scenarioRegistry() Registry {
	r := Registry{Clusters: map[string]ClusterFunc{}, AWS: map[string]AWSFunc{}}
	for _, k := range []string{"host", "kind"} {
		r.Clusters[k] = func(_ context.Context, _ Selection, aws framework.AWS) (framework.Cluster, error) {
			return &fakeCluster{name: k, aws: aws}, nil
		}
	}
	for _, k := range []string{"moto", "moto@kind", "localstack", "aws"} {
		r.AWS[k] = func(context.Context, Selection) (framework.AWS, error) { return &fakeAWS{name: k}, nil }
	}
	return r
}

func TestOpenEveryCombination(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"host+moto": "moto", "host+localstack": "localstack", "host+aws": "aws",
		"kind+moto": "moto@kind", "kind+localstack": "localstack", "kind+aws": "aws",
	}
	for _, c := range ClusterNames {
		for _, a := range AWSNames {
			sel := Selection{Cluster: c, AWS: a}
			t.Run(sel.String(), func(t *testing.T) {
				t.Parallel()
				e, err := scenarioRegistry().Open(context.Background(), sel)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				fc, fa := e.Cluster.(*fakeCluster), e.AWS.(*fakeAWS)
				if fc.name != c || fa.name != want[sel.String()] {
					t.Errorf("got cluster %q and AWS %q, want %q and %q", fc.name, fa.name, c, want[sel.String()])
				}
				if fc.aws != e.AWS {
					t.Error("the cluster constructor did not get the running AWS backend")
				}
				if err := e.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				if fc.deleted != 1 || fa.closed != 1 {
					t.Errorf("after Close: cluster deleted %d times, AWS closed %d times; want 1 and 1", fc.deleted, fa.closed)
				}
			})
		}
	}
}

func TestResolveErrors(t *testing.T) {
	t.Parallel()
	docker := Registry{
		Clusters: map[string]ClusterFunc{"kind": scenarioRegistry().Clusters["kind"]},
		AWS:      map[string]AWSFunc{"moto@kind": scenarioRegistry().AWS["moto@kind"], "localstack": scenarioRegistry().AWS["localstack"]},
	}
	cases := []struct {
		sel  Selection
		want string
	}{
		{Selection{Cluster: "host", AWS: "moto"}, `E2E_CLUSTER="host": no constructor registered for it (registered: kind)`},
		{Selection{Cluster: "kind", AWS: "aws"}, `E2E_AWS="aws" with E2E_CLUSTER="kind": no constructor registered for it (registered: localstack, moto@kind)`},
		{Selection{Cluster: "kind", AWS: "s3"}, `E2E_AWS="s3": want one of moto, localstack, aws`},
	}
	for _, tc := range cases {
		t.Run(tc.sel.String(), func(t *testing.T) {
			t.Parallel()
			if _, _, err := docker.Resolve(tc.sel); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Resolve = %v, want %q", err, tc.want)
			}
		})
	}
	// moto@kind serves kind only: the host cluster needs the scenario's own "moto".
	if _, _, err := docker.With(Registry{Clusters: scenarioRegistry().Clusters}).Resolve(Selection{Cluster: "host", AWS: "moto"}); err == nil {
		t.Error(`"moto@kind" was used for the host cluster`)
	}
}

func TestOpenClosesAWSWhenClusterFails(t *testing.T) {
	t.Parallel()
	var aws *fakeAWS
	r := Registry{
		Clusters: map[string]ClusterFunc{"kind": func(context.Context, Selection, framework.AWS) (framework.Cluster, error) {
			return nil, errors.New("no docker")
		}},
		AWS: map[string]AWSFunc{"localstack": func(context.Context, Selection) (framework.AWS, error) {
			aws = &fakeAWS{name: "localstack"}
			return aws, nil
		}},
	}
	_, err := r.Open(context.Background(), Selection{Cluster: "kind", AWS: "localstack"})
	if err == nil || !strings.Contains(err.Error(), `start cluster "kind": no docker`) {
		t.Fatalf("Open = %v, want the cluster's error", err)
	}
	if aws.closed != 1 {
		t.Errorf("AWS backend closed %d times after the cluster failed, want 1", aws.closed)
	}
}

func TestKeepLeavesTheClusterButClosesAWS(t *testing.T) {
	t.Parallel()
	e, err := scenarioRegistry().Open(context.Background(), Selection{Cluster: "kind", AWS: "aws", Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d, c := e.Cluster.(*fakeCluster).deleted, e.AWS.(*fakeAWS).closed; d != 0 || c != 1 {
		t.Errorf("KEEP=1: cluster deleted %d times, AWS closed %d times; want 0 and 1", d, c)
	}
}

func TestDockerRegistry(t *testing.T) {
	t.Setenv(realaws.OptInEnv, "")
	r := Docker(DockerParams{ClusterName: "irsa-e2e", Bucket: "b"})
	for _, k := range []string{"kind"} {
		if r.Clusters[k] == nil {
			t.Errorf("Docker() has no cluster %q", k)
		}
	}
	for _, k := range []string{"localstack", "moto@kind", "aws"} {
		if r.AWS[k] == nil {
			t.Errorf("Docker() has no AWS backend %q", k)
		}
	}
	// With the scenario's host cluster and moto process, every combination resolves.
	full := Docker(DockerParams{}).With(Registry{
		Clusters: map[string]ClusterFunc{"host": scenarioRegistry().Clusters["host"]},
		AWS:      map[string]AWSFunc{"moto": scenarioRegistry().AWS["moto"]},
	})
	for _, c := range ClusterNames {
		for _, a := range AWSNames {
			if _, _, err := full.Resolve(Selection{Cluster: c, AWS: a}); err != nil {
				t.Errorf("%s+%s: %v", c, a, err)
			}
		}
	}
	// Real AWS is refused without the opt-in, before any AWS call.
	_, err := r.Open(context.Background(), Selection{Cluster: "kind", AWS: "aws"})
	if err == nil || !strings.Contains(err.Error(), realaws.OptInEnv) {
		t.Fatalf("Open(kind+aws) without %s = %v, want a refusal naming it", realaws.OptInEnv, err)
	}
}

func TestContainerOptionsGate(t *testing.T) {
	t.Parallel()
	if o := containerOptions(Selection{Cluster: "kind", AWS: "localstack"}, DockerParams{}); o.Gate == nil || o.Network != "kind" {
		t.Errorf("kind+localstack: gate set %v, network %q; want the strict STS gate on network kind", o.Gate != nil, o.Network)
	}
	if o := containerOptions(Selection{Cluster: "host", AWS: "localstack"}, DockerParams{NoGate: true}); o.Gate != nil || o.Network != "" {
		t.Errorf("host+localstack with NoGate: gate set %v, network %q; want no gate, loopback only", o.Gate != nil, o.Network)
	}
}

func TestIssuerURL(t *testing.T) {
	t.Parallel()
	if got, want := IssuerURL(&fakeAWS{}, "my-issuer"), "https://my-issuer.s3.eu-west-1.amazonaws.com"; got != want {
		t.Errorf("IssuerURL on real AWS = %q, want %q", got, want)
	}
	if got := Bucket(&fakeAWS{}, "irsa-e2e-issuer"); got != "irsa-e2e-issuer" {
		t.Errorf("Bucket on an emulator = %q, want the given name", got)
	}
	e := emulatorIssuer("https://127.0.0.1:4443")
	if got, want := IssuerURL(e, "b"), "https://127.0.0.1:4443/b"; got != want {
		t.Errorf("IssuerURL on an emulator = %q, want %q", got, want)
	}
}

type emulatorIssuer string

func (e emulatorIssuer) IssuerURL(b string) string { return fmt.Sprintf("%s/%s", e, b) }
func (e emulatorIssuer) Region() string            { return "us-east-1" }
func (emulatorIssuer) Endpoint() string            { return "" }
func (emulatorIssuer) PodEndpoint() string         { return "" }
func (emulatorIssuer) CAFile() string              { return "" }
func (emulatorIssuer) Env() []string               { return nil }
func (emulatorIssuer) Close(context.Context) error { return nil }
