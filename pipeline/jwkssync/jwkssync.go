// Package jwkssync is the in-cluster half of `irsa sync --install`: a CronJob that runs `irsa sync-job` with irsa's
// image under a ServiceAccount bound to a role allowed only s3:PutObject on the JWKS object. Each run reads the keys
// the apiserver serves at /openid/v1/jwks (any ServiceAccount may, through kubeadm's
// system:service-account-issuer-discovery binding), reads the published JWKS anonymously as STS does, merges the two
// (documents.MergeJWKS: a published key is never dropped) and uploads the result only when it differs. It needs no
// other permission; the discovery document is left alone (a key of a new algorithm needs `irsa sync` from outside).
package jwkssync

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
)

// Names of what `irsa sync --install` makes, in config.WebhookNamespace (teardown removes that namespace; the role
// is an irsa binding, removed with the others).
const (
	ServiceAccount  = "irsa-sync"
	CronJobName     = "irsa-sync"
	CAConfigMap     = "irsa-sync-ca"
	DefaultSchedule = "*/10 * * * *"
	caMountDir      = "/etc/irsa-sync-ca"
)

// Options are what one run needs.
type Options struct {
	Client kubernetes.Interface
	// IssuerURL serves the JWKS at <IssuerURL>/keys.json; Bucket and JWKSKey are where it is written.
	IssuerURL, Bucket, JWKSKey string
	// HTTP fetches the published JWKS anonymously; S3 writes it (PutObject only).
	HTTP *http.Client
	S3   *s3.Client
}

// Result is what a run did.
type Result struct {
	Changed bool             `json:"changed"`
	Merged  documents.Merged `json:"-"`
	Added   []string         `json:"added"`
}

// Run makes the published JWKS hold every key the apiserver serves, keeping the keys it already publishes. A missing
// JWKS is an error: the job keeps an issuer in sync, it does not set one up.
func Run(ctx context.Context, o Options) (Result, error) {
	var res Result
	set, err := apiserver.ServedKeys(ctx, o.Client)
	if err != nil {
		return res, err
	}
	var served []crypto.PublicKey
	for _, k := range set.Keys {
		if _, err := keys.AlgorithmOf(k.Key); err == nil {
			served = append(served, k.Key)
		}
	}
	u := documents.JoinURL(o.IssuerURL, config.JWKSKey)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return res, err
	}
	resp, err := o.HTTP.Do(req)
	if err != nil {
		return res, fmt.Errorf("GET %s: %w", u, err)
	}
	published, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("GET %s: HTTP %d %v: the issuer publishes no JWKS there; run `irsa apply` first", u, resp.StatusCode, err)
	}
	if res.Merged, err = documents.MergeJWKS(published, served, nil, documents.JWKSOptions{}); err != nil {
		return res, err
	}
	body, err := documents.MarshalKeySet(res.Merged.Set)
	if err != nil {
		return res, err
	}
	res.Added = res.Merged.Added
	if len(res.Merged.Added) == 0 && len(res.Merged.Stripped) == 0 {
		return res, nil
	}
	if _, err := o.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &o.Bucket, Key: &o.JWKSKey, Body: bytes.NewReader(body),
		ContentType: aws.String("application/json"), CacheControl: aws.String("max-age=300")}); err != nil {
		return res, fmt.Errorf("upload s3://%s/%s: %w", o.Bucket, o.JWKSKey, err)
	}
	res.Changed = true
	return res, nil
}

// PutPolicy is the role's one permission: s3:PutObject on the JWKS object.
func PutPolicy(partition, bucket, jwksKey string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Sid":"IrsaSyncJWKS","Effect":"Allow","Action":"s3:PutObject","Resource":"arn:%s:s3:::%s/%s"}]}`, partition, bucket, jwksKey)
}

// JobSpec is what the CronJob runs.
type JobSpec struct {
	ClusterName, Image, Schedule string
	IssuerURL, Bucket, JWKSKey   string
	Region                       string
	// EndpointURL is the AWS endpoint the job writes S3 through; STSEndpointURL the STS endpoint its web identity is
	// exchanged at (the SDK reads only AWS_ENDPOINT_URL_STS for that). Empty: AWS's.
	EndpointURL, STSEndpointURL string
	// CABundle, when set, is trusted for the issuer and AWS (an emulator's CA); it is mounted from CAConfigMap.
	CABundle         []byte
	ImagePullSecrets []string
}

// CronJob is the CronJob of spec, in config.WebhookNamespace.
func CronJob(spec JobSpec) *batchv1.CronJob {
	cmd := []string{"/usr/local/bin/irsa", "sync-job", "--issuer-url", spec.IssuerURL, "--bucket", spec.Bucket,
		"--jwks-key", spec.JWKSKey, "--region", spec.Region}
	if spec.EndpointURL != "" {
		cmd = append(cmd, "--aws-endpoint-url", spec.EndpointURL)
	}
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	var env []corev1.EnvVar
	if spec.STSEndpointURL != "" {
		env = append(env, corev1.EnvVar{Name: "AWS_ENDPOINT_URL_STS", Value: spec.STSEndpointURL})
	}
	if len(spec.CABundle) > 0 {
		cmd = append(cmd, "--ca-bundle", caMountDir+"/ca.pem")
		env = append(env, corev1.EnvVar{Name: "AWS_CA_BUNDLE", Value: caMountDir + "/ca.pem"})
		volumes = []corev1.Volume{{Name: "ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: CAConfigMap}}}}}
		mounts = []corev1.VolumeMount{{Name: "ca", MountPath: caMountDir, ReadOnly: true}}
	}
	var pull []corev1.LocalObjectReference
	for _, s := range spec.ImagePullSecrets {
		pull = append(pull, corev1.LocalObjectReference{Name: s})
	}
	labels := map[string]string{config.ManagedByTagKey: config.ManagedByValue, config.ClusterLabel: spec.ClusterName, "app.kubernetes.io/component": "jwks-sync"}
	no, yes, nonRoot := false, true, int64(65532)
	history := int32(1)
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: CronJobName, Namespace: config.WebhookNamespace, Labels: labels},
		Spec: batchv1.CronJobSpec{
			Schedule: spec.Schedule, ConcurrencyPolicy: batchv1.ForbidConcurrent,
			SuccessfulJobsHistoryLimit: &history, FailedJobsHistoryLimit: &history,
			JobTemplate: batchv1.JobTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: batchv1.JobSpec{
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
					ServiceAccountName: ServiceAccount, RestartPolicy: corev1.RestartPolicyOnFailure, ImagePullSecrets: pull,
					SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &nonRoot, FSGroup: &nonRoot},
					Containers: []corev1.Container{{Name: "sync", Image: spec.Image, Command: cmd, Env: env, VolumeMounts: mounts,
						SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes,
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
					Volumes: volumes,
				}},
			}},
		},
	}
}
