package backends

import (
	"context"

	"log/slog"

	"github.com/irsa-anywhere/irsa/e2e/aws/localstack"
	"github.com/irsa-anywhere/irsa/e2e/aws/realaws"
	"github.com/irsa-anywhere/irsa/e2e/cluster/kind"
	"github.com/irsa-anywhere/irsa/e2e/framework"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/kindconfig"
)

// DockerParams is what the Docker-based constructors need from the scenario.
type DockerParams struct {
	// ClusterName names the kind cluster. With real AWS, use the run ID instead (RealAWSRunID) so the sweeper
	// finds the run's resources by their owner tag.
	ClusterName string
	// Bucket is the issuer bucket: the kind apiserver issues tokens for its issuer URL from the start. With real
	// AWS it is replaced by the run's own bucket (Bucket func).
	Bucket string
	// Workers is the number of kind worker nodes.
	Workers int
	// KubeconfigPath is where kind writes the admin kubeconfig; empty means a temporary file.
	KubeconfigPath string
	// Gate replaces the strict STS gate (localstack.STSGate) in front of the emulators.
	Gate localstack.GateFunc
	// NoGate forwards AssumeRoleWithWebIdentity to the emulator unchecked (it then accepts any token).
	NoGate bool
	// Logger receives kind's progress lines; nil discards them.
	Logger *slog.Logger
}

// Docker is the registry of the Docker-based backends: "kind", "localstack", "moto@kind" (moto's image on kind's
// network) and "aws" (real AWS, refused without realaws.OptInEnv=1). The scenario adds "host" and "moto".
func Docker(p DockerParams) Registry {
	return Registry{
		Clusters: map[string]ClusterFunc{
			"kind": func(ctx context.Context, sel Selection, aws framework.AWS) (framework.Cluster, error) {
				name := p.ClusterName
				if id := RealAWSRunID(aws); id != "" {
					name = id
				}
				return kind.Create(ctx, kind.Options{
					Name:           name,
					Config:         kindconfig.Options{IssuerURL: IssuerURL(aws, Bucket(aws, p.Bucket)), Audience: config.DefaultAudience, Workers: p.Workers, NodeImage: sel.NodeImage},
					KubeconfigPath: p.KubeconfigPath,
					Keep:           sel.Keep,
					Logger:         p.Logger,
				})
			},
		},
		AWS: map[string]AWSFunc{
			"localstack": func(ctx context.Context, sel Selection) (framework.AWS, error) {
				return localstack.StartLocalStack(ctx, containerOptions(sel, p))
			},
			"moto@kind": func(ctx context.Context, sel Selection) (framework.AWS, error) {
				return localstack.StartMoto(ctx, containerOptions(sel, p))
			},
			"aws": func(ctx context.Context, sel Selection) (framework.AWS, error) {
				return realaws.New(ctx, realaws.Options{})
			},
		},
	}
}

// containerOptions put the emulator on kind's network when the cluster is kind, so pods reach it.
func containerOptions(sel Selection, p DockerParams) localstack.Options {
	o := localstack.Options{Gate: p.Gate, Image: sel.AWSImage}
	if o.Gate == nil && !p.NoGate {
		o.Gate = localstack.STSGate(p.Logger)
	}
	if sel.Cluster == "kind" {
		o.Network = kind.Network
	}
	return o
}

// IssuerURL is the issuer for bucket on aws: the backend's own, or irsa's default (the bucket's S3 URL).
func IssuerURL(aws framework.AWS, bucket string) string {
	if u := aws.IssuerURL(bucket); u != "" {
		return u
	}
	return config.BucketIssuerURL(bucket, aws.Region())
}

// Bucket is the issuer bucket to use on aws: with real AWS, one per run (bucket names are global, and the run's
// owner tag lets the sweeper find it), else name.
func Bucket(aws framework.AWS, name string) string {
	if id := RealAWSRunID(aws); id != "" {
		return id + "-issuer"
	}
	return name
}

// RealAWSRunID is the run ID when aws is real AWS (use it as the cluster name), else "".
func RealAWSRunID(aws framework.AWS) string {
	if rb, ok := aws.(*realaws.Backend); ok {
		return rb.RunID()
	}
	return ""
}
