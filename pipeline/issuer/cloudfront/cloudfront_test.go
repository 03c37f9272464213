package cloudfront

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/irsa-anywhere/irsa/internal/motoserver"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/issuer"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// moto with ACM validating a DNS-validated certificate after one second (MOTO_ACM_VALIDATION_WAIT; on AWS it takes
// minutes once the validation record is in the zone; moto checks no record).
func startMoto(t *testing.T) *awsclient.Clients {
	t.Helper()
	s, err := motoserver.StartWithOptions(t.TempDir(), motoserver.Options{Env: []string{"MOTO_ACM_VALIDATION_WAIT=1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := awsclient.New(context.Background(), awsclient.Options{Region: "eu-west-1", EndpointURL: s.URL, CABundle: ca,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func records(t *testing.T, c *awsclient.Clients, zone string) map[string]r53types.ResourceRecordSet {
	t.Helper()
	out, err := c.Route53.ListResourceRecordSets(context.Background(), &route53.ListResourceRecordSetsInput{HostedZoneId: &zone})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]r53types.ResourceRecordSet{}
	for _, r := range out.ResourceRecordSets {
		m[aws.ToString(r.Name)+" "+string(r.Type)] = r
	}
	return m
}

// With a domain: apply requests the certificate in us-east-1, writes its validation record, waits for it to be
// issued, makes the distribution with the domain as alias and the certificate, and writes alias A/AAAA records and
// the ownership TXT. A second run changes nothing. Teardown removes the distribution, origin access control,
// certificate, validation record and the records irsa can prove its own, and keeps a record it cannot.
func TestCustomDomain(t *testing.T) {
	c := startMoto(t)
	ctx := context.Background()
	zoneOut, err := c.Route53.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String("example.com"), CallerReference: aws.String("test")})
	if err != nil {
		t.Fatal(err)
	}
	zone := strings.TrimPrefix(aws.ToString(zoneOut.HostedZone.Id), "/hostedzone/")
	// Someone else's record in the zone, to be kept.
	if _, err := c.Route53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: &zone, ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{{
		Action: r53types.ChangeActionCreate, ResourceRecordSet: &r53types.ResourceRecordSet{Name: aws.String("www.example.com."), Type: r53types.RRTypeA, TTL: aws.Int64(60),
			ResourceRecords: []r53types.ResourceRecord{{Value: aws.String("192.0.2.1")}}},
	}}}}); err != nil {
		t.Fatal(err)
	}
	disc, jwks := issuer.ObjectKeys("https://oidc.example.com", "irsa-b1")
	h := &Host{S3: c.S3, CloudFront: c.CloudFront, ACM: c.ACM, Route53: c.Route53, Bucket: "irsa-b1", Region: "eu-west-1", Partition: "aws",
		AccountID: "123456789012", ClusterName: "c1", DiscoveryKey: disc, JWKSKey: jwks, Domain: "oidc.example.com",
		PollInterval: 200 * time.Millisecond, DeployTimeout: time.Minute}
	docs := []issuer.Document{{Key: disc, Body: []byte(`{}`), ContentType: "application/json"}, {Key: jwks, Body: []byte(`{"keys":[]}`), ContentType: "application/json"}}

	u, changes, err := h.Locate(ctx, false)
	if err != nil || u != "https://oidc.example.com" || !hasChange(changes, stage.Create, "acm-certificate") {
		t.Fatalf("plan: %s %v %v", u, changes, err)
	}
	u, changes, err = h.Locate(ctx, true)
	if err != nil {
		t.Fatalf("locate: %v (%v)", err, changes)
	}
	pub, err := h.Publish(ctx, docs)
	if err != nil {
		t.Fatalf("publish: %v (%v)", err, pub)
	}
	changes = append(changes, pub...)
	for _, kind := range []string{"acm-certificate", "cloudfront-origin-access-control", "cloudfront-distribution", "route53-record", "s3-bucket"} {
		if !hasChange(changes, stage.Create, kind) {
			t.Errorf("apply made no %s: %v", kind, changes)
		}
	}
	st, err := h.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.CertificateStatus != "ISSUED" || !strings.Contains(strings.Join(st.CertificateNames, ","), "oidc.example.com") {
		t.Errorf("certificate %s %s %v", st.CertificateARN, st.CertificateStatus, st.CertificateNames)
	}
	cert, err := c.ACM.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: &st.CertificateARN})
	if err != nil || !strings.Contains(st.CertificateARN, ":acm:us-east-1:") {
		t.Errorf("certificate %s not in us-east-1 (%v)", st.CertificateARN, err)
	}
	recs := records(t, c, zone)
	validation := aws.ToString(cert.Certificate.DomainValidationOptions[0].ResourceRecord.Name)
	for _, name := range []string{"oidc.example.com. A", "oidc.example.com. AAAA", "oidc.example.com. TXT", validation + " CNAME"} {
		if _, ok := recs[name]; !ok {
			t.Errorf("no record %s: %v", name, recs)
		}
	}
	if a := recs["oidc.example.com. A"]; a.AliasTarget == nil || aws.ToString(a.AliasTarget.DNSName) != st.DistributionDomain+"." || aws.ToString(a.AliasTarget.HostedZoneId) != CloudFrontHostedZoneID {
		t.Errorf("A record %+v does not alias %s", a.AliasTarget, st.DistributionDomain)
	}

	h2 := *h
	h2.found = nil
	if u, changes, err := h2.Locate(ctx, false); err != nil || len(changes) != 0 || u != "https://oidc.example.com" {
		t.Errorf("second locate: %s %v %v", u, changes, err)
	}
	if changes, err := h2.Plan(ctx, docs); err != nil || len(changes) != 0 {
		t.Errorf("second plan: %v %v", changes, err)
	}

	// A record of the same name that is not irsa's (no ownership TXT) is refused, not overwritten.
	other := *h
	other.ClusterName, other.Bucket, other.found = "c2", "irsa-b2", &distribution{domain: "dother.cloudfront.net"}
	if _, err := other.records(ctx, true); err == nil || !strings.Contains(err.Error(), "not irsa's") {
		t.Errorf("records of another cluster over irsa's: %v", err)
	}

	removed, err := h2.Remove(ctx)
	if err != nil {
		t.Fatalf("remove: %v (%v)", err, removed)
	}
	order := []string{}
	for _, ch := range removed {
		order = append(order, string(ch.Action)+" "+ch.Kind)
	}
	want := "update cloudfront-distribution,delete cloudfront-distribution,delete cloudfront-origin-access-control,delete acm-certificate,delete route53-record"
	if !strings.HasPrefix(strings.Join(order, ","), want) {
		t.Errorf("teardown order %v, want it to start %s", order, want)
	}
	recs = records(t, c, zone)
	for name := range recs {
		if strings.HasPrefix(name, "oidc.example.com.") || strings.HasPrefix(name, validation) {
			t.Errorf("record %s left after teardown", name)
		}
	}
	if _, ok := recs["www.example.com. A"]; !ok {
		t.Errorf("someone else's record www.example.com was removed")
	}
	if st, err := h2.Inspect(ctx); err != nil || st.CertificateARN != "" || st.DistributionID != "" || st.OACID != "" {
		t.Errorf("left after teardown: %+v %v", st, err)
	}
}

func hasChange(changes []stage.Change, a stage.Action, kind string) bool {
	for _, c := range changes {
		if c.Action == a && c.Kind == kind {
			return true
		}
	}
	return false
}

// The ownership TXT names the cluster and the distribution; anything else is not irsa's.
func TestParseOwnership(t *testing.T) {
	if c, d := parseOwnership(OwnershipTXT("c1", "d1.cloudfront.net")); c != "c1" || d != "d1.cloudfront.net" {
		t.Errorf("round trip: %q %q", c, d)
	}
	for _, v := range []string{`"v=spf1 -all"`, `"heritage=external-dns,external-dns/owner=x"`, ""} {
		if c, _ := parseOwnership(v); c != "" {
			t.Errorf("%s parsed as irsa's (cluster %q)", v, c)
		}
	}
}

func TestOACName(t *testing.T) {
	if n := OACName("c1", "b1"); n != "irsa-c1-b1" {
		t.Errorf("OACName = %q", n)
	}
	long := OACName(strings.Repeat("c", 63), strings.Repeat("b", 63))
	if len(long) != 64 || long == OACName(strings.Repeat("c", 63), strings.Repeat("b", 62)+"x") {
		t.Errorf("long OACName %q (%d) not unique within 64", long, len(long))
	}
	_ = config.OwnerTagKey
}
