package cloudfront

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cf "github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// State is what irsa doctor checks of this mode, read-only.
type State struct {
	// BlockPublicAccess holds the bucket's four settings in the order BlockPublicAcls, IgnorePublicAcls,
	// BlockPublicPolicy, RestrictPublicBuckets.
	BlockPublicAccess [4]bool
	// PublicStatements lists the statements of the bucket policy that allow anyone (Principal "*" or {"AWS": "*"}).
	PublicStatements []string
	// Distribution is irsa's distribution (empty ID: none).
	DistributionID, DistributionARN, DistributionDomain, Status string
	Enabled                                                     bool
	// OriginOAC is the origin access control the distribution's origin names; OriginOACReported is false when the
	// API returned no such field (moto 5.2.1), and then OriginOAC is the one irsa recorded in the OACTagKey tag.
	OriginOAC         string
	OriginOACReported bool
	// OAC is irsa's origin access control (empty ID: none) and whether it signs always with SigV4.
	OACID      string
	OACSigning bool
	// Certificate, with a domain: its ARN, status, expiry and names.
	CertificateARN, CertificateStatus string
	CertificateNotAfter               time.Time
	CertificateNames                  []string
}

// Inspect reads the state of this mode, read-only.
func (h *Host) Inspect(ctx context.Context) (*State, error) {
	st := &State{}
	pab, err := h.S3.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: &h.Bucket})
	if err == nil && pab.PublicAccessBlockConfiguration != nil {
		c := pab.PublicAccessBlockConfiguration
		st.BlockPublicAccess = [4]bool{aws.ToBool(c.BlockPublicAcls), aws.ToBool(c.IgnorePublicAcls), aws.ToBool(c.BlockPublicPolicy), aws.ToBool(c.RestrictPublicBuckets)}
	}
	if pol, err := h.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &h.Bucket}); err == nil {
		st.PublicStatements = PublicStatements(aws.ToString(pol.Policy))
	}
	d, err := h.findDistribution(ctx)
	if err != nil {
		return nil, err
	}
	if d != nil {
		st.DistributionID, st.DistributionARN, st.DistributionDomain, st.Status, st.Enabled = d.id, d.arn, d.domain, d.status, d.enabled
		got, err := h.CloudFront.GetDistributionConfig(ctx, &cf.GetDistributionConfigInput{Id: &d.id})
		if err != nil {
			return nil, fmt.Errorf("read CloudFront distribution %s: %w", d.id, err)
		}
		st.Enabled = aws.ToBool(got.DistributionConfig.Enabled) // moto's list summary lacks it
		st.OriginOAC = d.oacTag
		if o := got.DistributionConfig.Origins; o != nil {
			for _, origin := range o.Items {
				if aws.ToString(origin.Id) == OriginID && origin.OriginAccessControlId != nil {
					st.OriginOAC, st.OriginOACReported = aws.ToString(origin.OriginAccessControlId), true
				}
			}
		}
	}
	o, err := h.findOAC(ctx)
	if err != nil {
		return nil, err
	}
	if o != nil && aws.ToString(o.cfg.Description) == h.oacDescription() {
		st.OACID = o.id
		st.OACSigning = h.oacDrift(o) == ""
	}
	if h.Domain != "" {
		c, err := h.findCertificate(ctx)
		if err != nil {
			return nil, err
		}
		if c != nil {
			st.CertificateARN, st.CertificateStatus = aws.ToString(c.CertificateArn), string(c.Status)
			st.CertificateNotAfter = aws.ToTime(c.NotAfter)
			st.CertificateNames = c.SubjectAlternativeNames
			if len(st.CertificateNames) == 0 {
				st.CertificateNames = []string{aws.ToString(c.DomainName)}
			}
		}
	}
	return st, nil
}

// PublicStatements lists the Sids (or positions) of the policy's Allow statements whose principal is anyone.
func PublicStatements(policy string) []string {
	var doc struct{ Statement json.RawMessage }
	if json.Unmarshal([]byte(policy), &doc) != nil {
		return nil
	}
	var stmts []map[string]json.RawMessage
	if raw := strings.TrimSpace(string(doc.Statement)); strings.HasPrefix(raw, "{") {
		var one map[string]json.RawMessage
		_ = json.Unmarshal(doc.Statement, &one)
		stmts = append(stmts, one)
	} else {
		_ = json.Unmarshal(doc.Statement, &stmts)
	}
	var out []string
	for i, s := range stmts {
		var effect, sid string
		_ = json.Unmarshal(s["Effect"], &effect)
		_ = json.Unmarshal(s["Sid"], &sid)
		p := strings.ReplaceAll(string(s["Principal"]), " ", "")
		if effect == "Allow" && (p == `"*"` || strings.Contains(p, `"AWS":"*"`) || strings.Contains(p, `"AWS":["*"]`)) {
			if sid == "" {
				sid = fmt.Sprintf("statement %d", i+1)
			}
			out = append(out, sid)
		}
	}
	return out
}
