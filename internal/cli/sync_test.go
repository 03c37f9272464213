package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/doctor"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
)

// TestSyncAndPredecessorKeys runs apply, sync and doctor against a real kube-apiserver and moto. The issuer already
// publishes a predecessor cluster's key (blue/green: the same irsa cluster name, bucket and roles): apply merges the
// new cluster's key in and keeps the predecessor's; a JWKS that lost the apiserver's key is caught by doctor and
// repaired by sync; sync --retire removes the predecessor's key, and refuses the key the apiserver signs with.
func TestSyncAndPredecessorKeys(t *testing.T) {
	e := newEnv(t)
	kube := kubeapiserver.Start(t, kubeapiserver.Options{Issuer: e.issuer})
	cluster := []string{"--kubeconfig", kube.Kubeconfig, "--cluster-type", "external"}
	ctx := context.Background()
	c := clients(t)
	kidOf := func(path string) string {
		pub, err := keys.LoadPublicKeys(path)
		if err != nil {
			t.Fatal(err)
		}
		kid, err := keys.KeyID(pub[0])
		if err != nil {
			t.Fatal(err)
		}
		return kid
	}
	served, own := kidOf(kube.ServiceAccountKeyFile), kidOf(keys.PairIn(e.keyDir).PublicKeyPath)
	predecessor, _ := rsa.GenerateKey(rand.Reader, 2048)
	predKID, _ := keys.KeyID(predecessor.Public())
	published := func() []string {
		t.Helper()
		_, body := anonymousGet(t, e.issuer+"/keys.json")
		kids, err := documents.PublishedKIDs(body)
		if err != nil {
			t.Fatalf("published JWKS: %v\n%s", err, body)
		}
		if bytes.Contains(body, []byte(`"d"`)) {
			t.Errorf("published JWKS carries a private field:\n%s", body)
		}
		return kids
	}
	put := func(ks ...any) {
		t.Helper()
		var set jose.JSONWebKeySet
		for _, k := range ks {
			kid, _ := keys.KeyID(k)
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: "RS256", Use: "sig"})
		}
		body, _ := json.Marshal(set)
		if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("keys.json"), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	doctorLines := func() map[string]doctor.Check {
		t.Helper()
		_, out, errOut := e.run(append([]string{"doctor", "-o", "json"}, cluster...)...)
		var rep doctor.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("doctor -o json: %v\n%s%s", err, out, errOut)
		}
		lines := map[string]doctor.Check{}
		for _, c := range rep.Checks {
			lines[c.Name] = c
		}
		return lines
	}
	sameKIDs := func(what string, got []string, want ...string) {
		t.Helper()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: published kids %v, want %v", what, got, want)
		}
	}

	// The predecessor published its key first (a bucket irsa made for this cluster name).
	e.mustRun(append([]string{"apply", "--only", "issuer"}, cluster...)...)
	put(predecessor.Public())
	e.mustRun(append([]string{"apply", "--only", "issuer"}, cluster...)...)
	sameKIDs("apply over a predecessor's JWKS", published(), predKID, served, own)

	// Someone replaced the JWKS with one that lacks the apiserver's key: doctor says so, sync repairs it.
	put(predecessor.Public())
	if l := doctorLines()["signing keys published"]; l.OK || !strings.Contains(l.Message, served) || !strings.Contains(l.Fix, "irsa sync") {
		t.Errorf("doctor with the apiserver's key unpublished: %+v", l)
	}
	code, out, errOut := e.run(append([]string{"sync", "--dry-run"}, cluster...)...)
	if code != 2 || !strings.Contains(out, "adds ") || !strings.Contains(out, served) {
		t.Errorf("sync --dry-run: exit %d, want 2 and the kid it adds\n%s%s", code, out, errOut)
	}
	sameKIDs("after sync --dry-run", published(), predKID)
	e.mustRun(append([]string{"sync"}, cluster...)...)
	sameKIDs("after sync", published(), predKID, served, own)
	lines := doctorLines()
	if l := lines["signing keys published"]; !l.OK {
		t.Errorf("doctor after sync: %+v", l)
	}
	if l := lines["retained keys"]; !l.Info || !strings.Contains(l.Message, predKID) {
		t.Errorf("doctor does not list the retained predecessor key: %+v", l)
	}
	if code, out, _ := e.run(append([]string{"sync", "-o", "json"}, cluster...)...); code != 0 || !strings.Contains(out, `"changed": false`) {
		t.Errorf("second sync: exit %d, want no change\n%s", code, out)
	}

	// Retiring: the key the apiserver signs with is refused before any write; the predecessor's asks first.
	code, _, errOut = e.run(append([]string{"sync", "--retire", served, "--yes"}, cluster...)...)
	if code == 0 || !strings.Contains(errOut, "--retire "+served+": the cluster still serves this key") {
		t.Errorf("sync --retire of the served key: exit %d\n%s", code, errOut)
	}
	if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
		t.Errorf("refused retire wrote: %v", m)
	}
	code, _, errOut = e.run(append([]string{"sync", "--retire", predKID}, cluster...)...)
	if code == 0 || !strings.Contains(errOut, "run again with --yes") {
		t.Errorf("sync --retire without a terminal and without --yes: exit %d\n%s", code, errOut)
	}
	out = e.mustRun(append([]string{"sync", "--retire", predKID, "--yes"}, cluster...)...)
	if !strings.Contains(out, "retires "+predKID) {
		t.Errorf("sync --retire report does not name the retired kid:\n%s", out)
	}
	sameKIDs("after sync --retire", published(), served, own)
	// The key directory's key stays listed: published, but this apiserver (external) was never given it.
	if l := doctorLines()["retained keys"]; strings.Contains(l.Message, predKID) {
		t.Errorf("doctor still lists the retired key: %+v", l)
	}
}
