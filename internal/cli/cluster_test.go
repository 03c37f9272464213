package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
)

// A cluster irsa cannot use stops apply with an error that names the cluster and what went wrong, before anything
// is created in AWS.
func TestApplyWithUnusableCluster(t *testing.T) {
	kube := kubeapiserver.Start(t, kubeapiserver.Options{})
	unreachable := filepath.Join(t.TempDir(), "unreachable.kubeconfig")
	data, err := os.ReadFile(kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(unreachable, []byte(strings.ReplaceAll(string(data), kube.URL, "https://127.0.0.1:1")), 0o600)
	cases := []struct {
		name, kubeconfig, want string
	}{
		{"unreachable", unreachable, "127.0.0.1:1"},
		{"forbidden", kube.UserKubeconfig(t, "nobody"), "the kubeconfig's user lacks the permission"},
		{"missing file", "/nonexistent/kubeconfig", `kubeconfig "/nonexistent/kubeconfig"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			code, out, errOut := e.run("apply", "--kubeconfig", tc.kubeconfig, "--cluster-type", "external")
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("apply with a %s cluster: exit %d, want 1 with %q\nstdout: %s\nstderr: %s", tc.name, code, tc.want, out, errOut)
			}
			if _, err := clients(t).S3.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: &e.bucket}); !awsclient.IsNotFound(err) {
				t.Errorf("apply with a %s cluster created the bucket (HeadBucket: %v)", tc.name, err)
			}
		})
	}
}

func TestStatusReportsSyncAndDrift(t *testing.T) {
	e := newEnv(t)
	e.mustRun("apply")
	if out := e.mustRun("status"); !strings.Contains(out, "state:    in sync") || !strings.Contains(out, "issuer:   "+e.issuer) {
		t.Errorf("status after apply:\n%s", out)
	}
	clients(t).S3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &e.bucket, Key: strPtr("keys.json")})
	if out := e.mustRun("status"); !strings.Contains(out, "drifted") || !strings.Contains(out, "+ s3-object "+e.bucket+"/keys.json") {
		t.Errorf("status after deleting keys.json:\n%s", out)
	}
}

func strPtr(s string) *string { return &s }
