package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A binding with ack: SERVICE in irsa.yaml takes the controller's chart defaults and recommended policy where it
// leaves them empty, in the region's partition; what it sets itself stays.
func TestACKBindingDefaults(t *testing.T) {
	cases := []struct {
		name, region string
		in           Binding
		want         Binding
	}{
		{"chart defaults", "eu-west-1", Binding{ACK: "s3"},
			Binding{ACK: "s3", Namespace: "ack-system", ServiceAccount: "ack-s3-controller",
				PolicyARNs: []string{"arn:aws:iam::aws:policy/AmazonS3FullAccess"}, RoleName: "irsa-prod-ack-system-ack-s3-controller"}},
		{"china partition", "cn-north-1", Binding{ACK: "sqs"},
			Binding{ACK: "sqs", Namespace: "ack-system", ServiceAccount: "ack-sqs-controller",
				PolicyARNs: []string{"arn:aws-cn:iam::aws:policy/AmazonSQSFullAccess"}, RoleName: "irsa-prod-ack-system-ack-sqs-controller"}},
		{"own namespace and policy", "eu-west-1",
			Binding{ACK: "s3", Namespace: "platform", PolicyARNs: []string{"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}},
			Binding{ACK: "s3", Namespace: "platform", ServiceAccount: "ack-s3-controller",
				PolicyARNs: []string{"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}, RoleName: "irsa-prod-platform-ack-s3-controller"}},
		{"inline policy replaces the recommended one", "eu-west-1", Binding{ACK: "sns", InlinePolicy: `{}`},
			Binding{ACK: "sns", Namespace: "ack-system", ServiceAccount: "ack-sns-controller", InlinePolicy: `{}`,
				RoleName: "irsa-prod-ack-system-ack-sns-controller"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{ClusterName: "prod", Region: tc.region, Bucket: "prod-oidc", Bindings: []Binding{tc.in}}
			c.Defaults()
			if !reflect.DeepEqual(c.Bindings[0], tc.want) {
				t.Errorf("got  %+v\nwant %+v", c.Bindings[0], tc.want)
			}
		})
	}
}

func TestACKBindingFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "irsa.yaml")
	os.WriteFile(p, []byte("apiVersion: "+APIVersion+"\nkind: "+Kind+"\nclusterName: prod\nregion: eu-west-1\nbucket: prod-oidc\nbindings:\n- ack: s3\n- ack: dynamodb\n  namespace: data\n"), 0o600)
	c, _, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := []string{c.Bindings[0].Ref(), c.Bindings[1].Ref()}; !reflect.DeepEqual(got, []string{"ack-system/ack-s3-controller", "data/ack-dynamodb-controller"}) {
		t.Errorf("bindings: %v", got)
	}
}

func TestACKBindingRefusals(t *testing.T) {
	cases := []struct {
		name     string
		bindings []Binding
		want     string
	}{
		{"unknown service", []Binding{{ACK: "s4"}}, `ACK service "s4": unknown; irsa knows dynamodb, ec2, ecr,`},
		{"unknown service with a ServiceAccount", []Binding{{ACK: "S3", Namespace: "x", ServiceAccount: "y"}}, `binding x/y: ACK service "S3": unknown`},
		{"iam without a policy", []Binding{{ACK: "iam"}}, "ACK's iam controller has no recommended managed policy"},
		{"twice, once by name", []Binding{{ACK: "s3"}, {Namespace: "ack-system", ServiceAccount: "ack-s3-controller", PolicyARNs: []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"}}},
			`binding "ack-system/ack-s3-controller" is listed twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{ClusterName: "prod", Region: "eu-west-1", Bucket: "prod-oidc", Bindings: tc.bindings}
			c.Defaults()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
	// With a policy of its own, the IAM controller is bindable.
	c := &Config{ClusterName: "prod", Region: "eu-west-1", Bucket: "prod-oidc", Bindings: []Binding{{ACK: "iam", PolicyARNs: []string{"arn:aws:iam::aws:policy/IAMFullAccess"}}}}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Errorf("iam with a policy: %v", err)
	}
}
