package cloudfront

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	acmtypes "github.com/aws/aws-sdk-go-v2/service/acm/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// A custom domain: an ACM certificate in us-east-1 validated through a DNS record in the hosted zone, and alias
// A/AAAA records to the distribution.
//
// Route 53 records cannot be tagged. irsa knows a record is its own as external-dns does: next to the alias records
// it writes a TXT record of the same name whose value is OwnershipTXT (the cluster and the distribution). Apply
// overwrites an A/AAAA record only when that TXT names this cluster, or when the record already aliases irsa's
// distribution; teardown deletes the alias records only when the TXT names this cluster and they alias the
// distribution it names, and then the TXT. The certificate's validation CNAME is deleted with a certificate irsa owns.

// CloudFrontHostedZoneID is the hosted zone of every CloudFront distribution's alias target (Route 53 API reference,
// AliasTarget).
const CloudFrontHostedZoneID = "Z2FDTNDATAQYW2"

// OwnershipTXT is the TXT value that marks the domain's alias records as irsa's for cluster, aliasing
// distributionDomain.
func OwnershipTXT(cluster, distributionDomain string) string {
	return fmt.Sprintf(`"heritage=irsa,irsa/cluster=%s,irsa/distribution=%s"`, cluster, distributionDomain)
}

// parseOwnership returns the cluster and distribution domain an ownership TXT value names, or "" when it is not one.
func parseOwnership(v string) (cluster, distribution string) {
	v = strings.Trim(v, `"`)
	if !strings.HasPrefix(v, "heritage=irsa,") {
		return "", ""
	}
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(kv, "=")
		switch k {
		case "irsa/cluster":
			cluster = val
		case "irsa/distribution":
			distribution = val
		}
	}
	return cluster, distribution
}

// idempotencyToken is ACM's RequestCertificate token for cluster and domain: \w{1,32}.
func idempotencyToken(cluster, domain string) string {
	sum := sha256.Sum256([]byte(cluster + "/" + domain))
	return "irsa" + hex.EncodeToString(sum[:])[:28]
}

func fqdn(name string) string { return strings.TrimSuffix(name, ".") + "." }

// findCertificate finds the certificate for Domain tagged for this cluster.
func (h *Host) findCertificate(ctx context.Context) (*acmtypes.CertificateDetail, error) {
	p := acm.NewListCertificatesPaginator(h.ACM, &acm.ListCertificatesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list ACM certificates in %s: %w", awsclient.CloudFrontCertificateRegion, err)
		}
		for _, c := range page.CertificateSummaryList {
			if aws.ToString(c.DomainName) != h.Domain {
				continue
			}
			tags, err := h.ACM.ListTagsForCertificate(ctx, &acm.ListTagsForCertificateInput{CertificateArn: c.CertificateArn})
			if err != nil {
				return nil, fmt.Errorf("read tags of ACM certificate %s: %w", aws.ToString(c.CertificateArn), err)
			}
			owned := slices.ContainsFunc(tags.Tags, func(t acmtypes.Tag) bool {
				return aws.ToString(t.Key) == config.OwnerTagKey && aws.ToString(t.Value) == h.ClusterName
			})
			if !owned {
				continue
			}
			out, err := h.ACM.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: c.CertificateArn})
			if err != nil {
				return nil, fmt.Errorf("describe ACM certificate %s: %w", aws.ToString(c.CertificateArn), err)
			}
			return out.Certificate, nil
		}
	}
	return nil, nil
}

// certificate finds, or with create requests and validates, the certificate for Domain, and returns its ARN once it
// is issued ("" in a plan before it exists).
func (h *Host) certificate(ctx context.Context, create bool) (string, []stage.Change, error) {
	c, err := h.findCertificate(ctx)
	if err != nil {
		return "", nil, err
	}
	var changes []stage.Change
	if c != nil && c.Status == acmtypes.CertificateStatusIssued {
		return aws.ToString(c.CertificateArn), nil, nil
	}
	if c != nil && c.Status != acmtypes.CertificateStatusPendingValidation {
		return "", nil, fmt.Errorf("ACM certificate %s for %s is %s: delete it (irsa tagged it) and run apply again", aws.ToString(c.CertificateArn), h.Domain, c.Status)
	}
	if c == nil {
		changes = append(changes, stage.Change{Action: stage.Create, Kind: "acm-certificate", Name: h.Domain, Detail: "in " + awsclient.CloudFrontCertificateRegion + ", validated through DNS in the hosted zone"})
		if !create {
			return "", changes, nil
		}
		out, err := h.ACM.RequestCertificate(ctx, &acm.RequestCertificateInput{
			DomainName: aws.String(h.Domain), ValidationMethod: acmtypes.ValidationMethodDns,
			IdempotencyToken: aws.String(idempotencyToken(h.ClusterName, h.Domain)), // retries within an hour get the same certificate
			Tags: []acmtypes.Tag{
				{Key: aws.String(config.OwnerTagKey), Value: aws.String(h.ClusterName)},
				{Key: aws.String(config.ManagedByTagKey), Value: aws.String(config.ManagedByValue)},
			},
		})
		if err != nil {
			return "", nil, fmt.Errorf("request ACM certificate for %s: %w", h.Domain, err)
		}
		d, err := h.ACM.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: out.CertificateArn})
		if err != nil {
			return "", changes, fmt.Errorf("describe ACM certificate %s: %w", aws.ToString(out.CertificateArn), err)
		}
		c = d.Certificate
	} else {
		changes = append(changes, stage.Change{Action: stage.Update, Kind: "acm-certificate", Name: h.Domain, Detail: "pending validation: write the validation record and wait"})
		if !create {
			return "", changes, nil
		}
	}
	arn := aws.ToString(c.CertificateArn)
	rr, err := h.validationRecord(ctx, arn)
	if err != nil {
		return "", changes, err
	}
	zone, err := h.zone(ctx)
	if err != nil {
		return "", changes, err
	}
	if _, err := h.Route53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: &zone, ChangeBatch: &r53types.ChangeBatch{
		Comment: aws.String("irsa: ACM validation of " + h.Domain),
		Changes: []r53types.Change{{Action: r53types.ChangeActionUpsert, ResourceRecordSet: &r53types.ResourceRecordSet{
			Name: rr.Name, Type: r53types.RRType(rr.Type), TTL: aws.Int64(300), ResourceRecords: []r53types.ResourceRecord{{Value: rr.Value}},
		}}},
	}}); err != nil {
		return "", changes, fmt.Errorf("write ACM validation record %s in hosted zone %s: %w", aws.ToString(rr.Name), zone, err)
	}
	changes = append(changes, stage.Change{Action: stage.Create, Kind: "route53-record", Name: aws.ToString(rr.Name), Detail: "CNAME for ACM DNS validation"})
	deadline, interval := h.timeouts()
	start := time.Now()
	err = wait.PollUntilContextTimeout(ctx, interval, deadline, true, func(ctx context.Context) (bool, error) {
		d, err := h.ACM.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: &arn})
		if err != nil {
			return false, fmt.Errorf("describe ACM certificate %s: %w", arn, err)
		}
		switch d.Certificate.Status {
		case acmtypes.CertificateStatusIssued:
			return true, nil
		case acmtypes.CertificateStatusPendingValidation:
			h.log().Info("waiting for ACM to validate the certificate", "domain", h.Domain, "waited", time.Since(start).Round(time.Second).String())
			return false, nil
		}
		return false, fmt.Errorf("ACM certificate %s for %s is %s", arn, h.Domain, d.Certificate.Status)
	})
	if err != nil {
		return "", changes, fmt.Errorf("ACM certificate %s for %s not issued after %s: %w (is hosted zone %s the domain's public zone?)", arn, h.Domain, time.Since(start).Round(time.Second), err, zone)
	}
	return arn, changes, nil
}

// validationRecord waits for ACM to name the certificate's DNS validation record (it appears seconds after the
// request).
func (h *Host) validationRecord(ctx context.Context, arn string) (*acmtypes.ResourceRecord, error) {
	var rr *acmtypes.ResourceRecord
	err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := h.ACM.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: &arn})
		if err != nil {
			return false, fmt.Errorf("describe ACM certificate %s: %w", arn, err)
		}
		for _, o := range d.Certificate.DomainValidationOptions {
			if o.ResourceRecord != nil {
				rr = o.ResourceRecord
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("ACM certificate %s: no DNS validation record: %w", arn, err)
	}
	return rr, nil
}

// zone is the hosted zone of Domain: HostedZoneID, or the public zone whose name is the longest suffix of Domain.
func (h *Host) zone(ctx context.Context) (string, error) {
	if h.HostedZoneID != "" {
		return strings.TrimPrefix(h.HostedZoneID, "/hostedzone/"), nil
	}
	labels := strings.Split(h.Domain, ".")
	for i := 0; i < len(labels)-1; i++ {
		name := fqdn(strings.Join(labels[i:], "."))
		out, err := h.Route53.ListHostedZonesByName(ctx, &route53.ListHostedZonesByNameInput{DNSName: aws.String(name), MaxItems: aws.Int32(10)})
		if err != nil {
			return "", fmt.Errorf("find the Route 53 hosted zone of %s: %w", h.Domain, err)
		}
		for _, z := range out.HostedZones {
			if aws.ToString(z.Name) == name && (z.Config == nil || !z.Config.PrivateZone) {
				return strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/"), nil
			}
		}
	}
	return "", fmt.Errorf("no public Route 53 hosted zone for %s: create one, or set issuer.hostedZoneID", h.Domain)
}

// recordSets reads the record sets named Domain.
func (h *Host) recordSets(ctx context.Context, zone string) (map[r53types.RRType]r53types.ResourceRecordSet, error) {
	name := fqdn(h.Domain)
	out, err := h.Route53.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: &zone, StartRecordName: &name, MaxItems: aws.Int32(20)})
	if err != nil {
		return nil, fmt.Errorf("read records %s in hosted zone %s: %w", name, zone, err)
	}
	sets := map[r53types.RRType]r53types.ResourceRecordSet{}
	for _, s := range out.ResourceRecordSets {
		if strings.EqualFold(aws.ToString(s.Name), name) {
			sets[s.Type] = s
		}
	}
	return sets, nil
}

func aliasesTo(s r53types.ResourceRecordSet, distDomain string) bool {
	return s.AliasTarget != nil && strings.EqualFold(strings.TrimSuffix(aws.ToString(s.AliasTarget.DNSName), "."), distDomain)
}

func ownership(sets map[r53types.RRType]r53types.ResourceRecordSet) (cluster, distribution string) {
	if txt, ok := sets[r53types.RRTypeTxt]; ok {
		for _, r := range txt.ResourceRecords {
			if c, d := parseOwnership(aws.ToString(r.Value)); c != "" {
				return c, d
			}
		}
	}
	return "", ""
}

// records plans, or with create writes, the alias A and AAAA records to the distribution and the ownership TXT.
func (h *Host) records(ctx context.Context, create bool) ([]stage.Change, error) {
	distDomain := "<the distribution's domain>"
	if h.found != nil {
		distDomain = h.found.domain
	}
	zone, err := h.zone(ctx)
	if err != nil {
		return nil, err
	}
	sets, err := h.recordSets(ctx, zone)
	if err != nil {
		return nil, err
	}
	owner, _ := ownership(sets)
	var changes []stage.Change
	var batch []r53types.Change
	for _, typ := range []r53types.RRType{r53types.RRTypeA, r53types.RRTypeAaaa} {
		have, ok := sets[typ]
		if ok && aliasesTo(have, distDomain) {
			continue
		}
		if ok && owner != h.ClusterName {
			return nil, fmt.Errorf("Route 53 record %s %s exists and is not irsa's (no TXT %s): remove it, or choose another issuer.domain", h.Domain, typ, OwnershipTXT(h.ClusterName, distDomain))
		}
		action := stage.Create
		if ok {
			action = stage.Update
		}
		changes = append(changes, stage.Change{Action: action, Kind: "route53-record", Name: h.Domain + " " + string(typ), Detail: "alias to " + distDomain})
		batch = append(batch, r53types.Change{Action: r53types.ChangeActionUpsert, ResourceRecordSet: &r53types.ResourceRecordSet{
			Name: aws.String(fqdn(h.Domain)), Type: typ,
			AliasTarget: &r53types.AliasTarget{DNSName: aws.String(fqdn(distDomain)), HostedZoneId: aws.String(CloudFrontHostedZoneID)},
		}})
	}
	if c, d := ownership(sets); c != h.ClusterName || d != distDomain {
		if _, ok := sets[r53types.RRTypeTxt]; ok && c != h.ClusterName {
			return nil, fmt.Errorf("Route 53 record %s TXT exists and is not irsa's ownership record: remove it, or choose another issuer.domain", h.Domain)
		}
		changes = append(changes, stage.Change{Action: stage.Create, Kind: "route53-record", Name: h.Domain + " TXT", Detail: "ownership " + OwnershipTXT(h.ClusterName, distDomain)})
		batch = append(batch, r53types.Change{Action: r53types.ChangeActionUpsert, ResourceRecordSet: &r53types.ResourceRecordSet{
			Name: aws.String(fqdn(h.Domain)), Type: r53types.RRTypeTxt, TTL: aws.Int64(300),
			ResourceRecords: []r53types.ResourceRecord{{Value: aws.String(OwnershipTXT(h.ClusterName, distDomain))}},
		}})
	}
	if !create || len(batch) == 0 {
		return changes, nil
	}
	if _, err := h.Route53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: &zone, ChangeBatch: &r53types.ChangeBatch{
		Comment: aws.String("irsa issuer of cluster " + h.ClusterName), Changes: batch,
	}}); err != nil {
		return nil, fmt.Errorf("write records %s in hosted zone %s: %w", h.Domain, zone, err)
	}
	return changes, nil
}

// deleteCertificate deletes the certificate irsa owns for Domain and its validation record.
func (h *Host) deleteCertificate(ctx context.Context) ([]stage.Change, error) {
	c, err := h.findCertificate(ctx)
	if err != nil || c == nil {
		return nil, err
	}
	arn := aws.ToString(c.CertificateArn)
	if _, err := h.ACM.DeleteCertificate(ctx, &acm.DeleteCertificateInput{CertificateArn: &arn}); err != nil && !awsclient.IsNotFound(err) {
		return nil, fmt.Errorf("delete ACM certificate %s: %w", arn, err)
	}
	changes := []stage.Change{{Action: stage.Delete, Kind: "acm-certificate", Name: arn, Detail: h.Domain}}
	zone, err := h.zone(ctx)
	if err != nil {
		return changes, err
	}
	for _, o := range c.DomainValidationOptions {
		rr := o.ResourceRecord
		if rr == nil {
			continue
		}
		out, err := h.Route53.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: &zone, StartRecordName: rr.Name, StartRecordType: r53types.RRType(rr.Type), MaxItems: aws.Int32(1)})
		if err != nil {
			return changes, fmt.Errorf("read record %s in hosted zone %s: %w", aws.ToString(rr.Name), zone, err)
		}
		for _, s := range out.ResourceRecordSets {
			if !strings.EqualFold(aws.ToString(s.Name), aws.ToString(rr.Name)) || len(s.ResourceRecords) != 1 || aws.ToString(s.ResourceRecords[0].Value) != aws.ToString(rr.Value) {
				continue
			}
			if _, err := h.Route53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: &zone, ChangeBatch: &r53types.ChangeBatch{
				Changes: []r53types.Change{{Action: r53types.ChangeActionDelete, ResourceRecordSet: &s}},
			}}); err != nil {
				return changes, fmt.Errorf("delete record %s in hosted zone %s: %w", aws.ToString(rr.Name), zone, err)
			}
			changes = append(changes, stage.Change{Action: stage.Delete, Kind: "route53-record", Name: aws.ToString(rr.Name), Detail: "ACM validation CNAME"})
		}
	}
	return changes, nil
}

// deleteRecords deletes the alias records and the ownership TXT when the TXT names this cluster and the aliases
// point at the distribution it names (distDomain, when the distribution was found, must be that one).
func (h *Host) deleteRecords(ctx context.Context, distDomain string) ([]stage.Change, error) {
	zone, err := h.zone(ctx)
	if err != nil {
		return nil, err
	}
	sets, err := h.recordSets(ctx, zone)
	if err != nil {
		return nil, err
	}
	owner, ownedDist := ownership(sets)
	if owner != h.ClusterName || (distDomain != "" && !strings.EqualFold(ownedDist, distDomain)) {
		if len(sets) > 0 {
			return []stage.Change{{Action: stage.Keep, Kind: "route53-record", Name: h.Domain, Detail: "no TXT " + OwnershipTXT(h.ClusterName, distDomain) + ": not irsa's"}}, nil
		}
		return nil, nil
	}
	var batch []r53types.Change
	var changes []stage.Change
	for _, typ := range []r53types.RRType{r53types.RRTypeA, r53types.RRTypeAaaa, r53types.RRTypeTxt} {
		s, ok := sets[typ]
		if !ok || (typ != r53types.RRTypeTxt && !aliasesTo(s, ownedDist)) {
			continue
		}
		batch = append(batch, r53types.Change{Action: r53types.ChangeActionDelete, ResourceRecordSet: &s})
		changes = append(changes, stage.Change{Action: stage.Delete, Kind: "route53-record", Name: h.Domain + " " + string(typ)})
	}
	if len(batch) == 0 {
		return nil, nil
	}
	if _, err := h.Route53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: &zone, ChangeBatch: &r53types.ChangeBatch{Changes: batch}}); err != nil {
		return nil, fmt.Errorf("delete records %s in hosted zone %s: %w", h.Domain, zone, err)
	}
	return changes, nil
}
