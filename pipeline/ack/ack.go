// Package ack knows the AWS Controllers for Kubernetes (ACK) service controllers that irsa can bind: for each AWS
// service, the namespace and ServiceAccount the controller's Helm chart runs under and the managed policy its project
// recommends for the controller's IAM role.
//
// Sources (checked 2026-11-30):
//   - The policy is the one in each controller's repository, github.com/aws-controllers-k8s/SERVICE-controller, file
//     config/iam/recommended-policy-arn, which ACK's IRSA guide reads when it creates the role
//     (https://aws-controllers-k8s.github.io/community/docs/user-docs/irsa). The IAM controller ships
//     config/iam/recommended-inline-policy instead: it has no managed policy here, and its binding must name one.
//   - The ServiceAccount is the chart's helm/values.yaml serviceAccount.name, ack-SERVICE-controller; the namespace is
//     the one ACK's guides install the charts into (`helm install -n ack-system`) and config/rbac/service-account.yaml
//     names, ack-system. A controller installed elsewhere is bound with an explicit NAMESPACE/SERVICEACCOUNT.
package ack

import (
	"fmt"
	"slices"
	"strings"
)

// Namespace is the namespace ACK's guides install every controller's Helm chart into.
const Namespace = "ack-system"

// Controller is one ACK service controller.
type Controller struct {
	// Service is the AWS service's short name as ACK names its controller: s3 for s3-controller.
	Service string
	// Namespace and ServiceAccount are where the controller's Helm chart runs it by default.
	Namespace, ServiceAccount string
	// Policy is the name of the AWS managed policy the project recommends (arn:PARTITION:iam::aws:policy/Policy), or
	// "" when it recommends an inline policy instead.
	Policy string
	// Module is the controller's Go module.
	Module string
}

// PolicyARN is the recommended managed policy's ARN in partition (aws, aws-cn, aws-us-gov), or "" when the project
// recommends an inline policy.
func (c Controller) PolicyARN(partition string) string {
	if c.Policy == "" {
		return ""
	}
	return "arn:" + partition + ":iam::aws:policy/" + c.Policy
}

// recommended maps each service to the managed policy in its config/iam/recommended-policy-arn ("" for an inline
// policy only).
var recommended = map[string]string{
	"dynamodb":          "AmazonDynamoDBFullAccess",
	"ec2":               "AmazonEC2FullAccess",
	"ecr":               "AmazonEC2ContainerRegistryFullAccess",
	"efs":               "AmazonElasticFileSystemFullAccess",
	"eventbridge":       "AmazonEventBridgeFullAccess",
	"iam":               "",
	"kms":               "AWSKeyManagementServicePowerUser",
	"lambda":            "AWSLambda_FullAccess",
	"memorydb":          "AmazonMemoryDBFullAccess",
	"opensearchservice": "AmazonOpenSearchServiceFullAccess",
	"rds":               "AmazonRDSFullAccess",
	"route53":           "AmazonRoute53FullAccess",
	"s3":                "AmazonS3FullAccess",
	"secretsmanager":    "SecretsManagerReadWrite",
	"sns":               "AmazonSNSFullAccess",
	"sqs":               "AmazonSQSFullAccess",
	"ssm":               "AmazonSSMFullAccess",
}

// Services lists the services irsa knows, sorted.
func Services() []string {
	s := make([]string, 0, len(recommended))
	for k := range recommended {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// Lookup returns the controller of service (lowercase, as in Services). An unknown service is an error naming the
// value and the known services.
func Lookup(service string) (Controller, error) {
	policy, ok := recommended[service]
	if !ok {
		return Controller{}, fmt.Errorf("ACK service %q: unknown; irsa knows %s (for another controller, bind its NAMESPACE/SERVICEACCOUNT with --policy-arn)", service, strings.Join(Services(), ", "))
	}
	return Controller{
		Service: service, Namespace: Namespace, ServiceAccount: "ack-" + service + "-controller", Policy: policy,
		Module: "github.com/aws-controllers-k8s/" + service + "-controller",
	}, nil
}
