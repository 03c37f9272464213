package ack_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/irsa-anywhere/irsa/internal/motoserver"
	"github.com/irsa-anywhere/irsa/pipeline/ack"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
)

// The table gives each controller the chart's defaults: ack-system/ack-SERVICE-controller, and the module it builds
// from.
func TestLookup(t *testing.T) {
	t.Parallel()
	cases := []struct {
		service, sa, policy string
	}{
		{"s3", "ack-s3-controller", "arn:aws:iam::aws:policy/AmazonS3FullAccess"},
		{"sqs", "ack-sqs-controller", "arn:aws:iam::aws:policy/AmazonSQSFullAccess"},
		{"sns", "ack-sns-controller", "arn:aws:iam::aws:policy/AmazonSNSFullAccess"},
		{"dynamodb", "ack-dynamodb-controller", "arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess"},
		{"ecr", "ack-ecr-controller", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryFullAccess"},
		{"lambda", "ack-lambda-controller", "arn:aws:iam::aws:policy/AWSLambda_FullAccess"},
		{"rds", "ack-rds-controller", "arn:aws:iam::aws:policy/AmazonRDSFullAccess"},
		{"iam", "ack-iam-controller", ""}, // its project recommends an inline policy only
	}
	for _, tc := range cases {
		c, err := ack.Lookup(tc.service)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", tc.service, err)
		}
		if c.Namespace != "ack-system" || c.ServiceAccount != tc.sa || c.PolicyARN("aws") != tc.policy ||
			c.Module != "github.com/aws-controllers-k8s/"+tc.service+"-controller" {
			t.Errorf("Lookup(%q) = %+v, policy %q; want ack-system/%s with %q", tc.service, c, c.PolicyARN("aws"), tc.sa, tc.policy)
		}
	}
	s3, _ := ack.Lookup("s3")
	if got := s3.PolicyARN("aws-cn"); got != "arn:aws-cn:iam::aws:policy/AmazonS3FullAccess" {
		t.Errorf("PolicyARN(aws-cn) = %q", got)
	}
}

func TestLookupUnknownNamesTheValueAndTheList(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "S3", "s4", "ack-s3-controller", "s3 "} {
		_, err := ack.Lookup(bad)
		if err == nil {
			t.Errorf("Lookup(%q): no error", bad)
			continue
		}
		for _, want := range []string{`ACK service "` + bad + `": unknown`, strings.Join(ack.Services(), ", ")} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Lookup(%q) = %v, want %q in it", bad, err, want)
			}
		}
	}
}

// Every name the table derives is one Kubernetes accepts, and every recommended policy is an AWS managed policy: moto
// loads AWS's own list of managed policies (MOTO_IAM_LOAD_MANAGED_POLICIES), so a typo in the table fails here.
func TestEveryControllerIsBindable(t *testing.T) {
	moto := motoserver.Start(t)
	ca, err := os.ReadFile(moto.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := awsclient.New(context.Background(), awsclient.Options{Region: "eu-west-1", EndpointURL: moto.URL, CABundle: ca,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	if err != nil {
		t.Fatal(err)
	}
	services := ack.Services()
	if len(services) < 8 {
		t.Fatalf("only %d services: %v", len(services), services)
	}
	for _, s := range services {
		ctl, err := ack.Lookup(s)
		if err != nil {
			t.Fatal(err)
		}
		if errs := validation.IsDNS1123Label(ctl.Namespace); len(errs) > 0 {
			t.Errorf("%s: namespace %q: %v", s, ctl.Namespace, errs)
		}
		if errs := validation.IsDNS1123Subdomain(ctl.ServiceAccount); len(errs) > 0 {
			t.Errorf("%s: service account %q: %v", s, ctl.ServiceAccount, errs)
		}
		arn := ctl.PolicyARN("aws")
		if arn == "" {
			continue
		}
		if _, err := c.IAM.GetPolicy(context.Background(), &iam.GetPolicyInput{PolicyArn: aws.String(arn)}); err != nil {
			t.Errorf("%s: recommended policy %s: %v", s, arn, err)
		}
	}
}
