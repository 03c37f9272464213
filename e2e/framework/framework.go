// Package framework holds what every e2e backend implements, so the IRSA scenario is written once and runs on a
// host kubeadm cluster, on kind, against moto, LocalStack or real AWS.
package framework

import "context"

// Cluster is a running Kubernetes cluster the scenario can target.
type Cluster interface {
	// Name is the cluster name, used as irsa's --cluster-name.
	Name() string
	// Type is irsa's --cluster-type for it: "kubeadm" or "kind".
	Type() string
	// Kubeconfig is the path of an admin kubeconfig reachable from the machine running the tests.
	Kubeconfig() string
	// LoadImages makes OCI image tarballs available to the cluster's container runtime.
	LoadImages(ctx context.Context, tarballs ...string) error
	// CollectLogs writes the cluster's logs (kubelet, control plane, pods) into dir.
	CollectLogs(ctx context.Context, dir string) error
	// Delete tears the cluster down and removes everything it made.
	Delete(ctx context.Context) error
}

// AWS is an AWS backend: an emulator or real AWS.
type AWS interface {
	// Endpoint is the URL the irsa CLI uses (--aws-endpoint-url); empty for real AWS.
	Endpoint() string
	// PodEndpoint is the URL pods in the cluster use to reach the same backend (AWS_ENDPOINT_URL_STS/S3);
	// empty for real AWS.
	PodEndpoint() string
	// IssuerURL is the issuer URL to publish for bucket; empty means irsa's default (the bucket's S3 URL).
	IssuerURL(bucket string) string
	// CAFile is a PEM bundle to trust for Endpoint and PodEndpoint; empty for real AWS.
	CAFile() string
	Region() string
	// Env is the environment (credentials, CA bundle) for irsa and AWS SDK clients on the test machine.
	Env() []string
	// Close stops the backend.
	Close(ctx context.Context) error
}
