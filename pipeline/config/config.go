package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// APIVersion and Kind identify irsa.yaml as a versioned document, as kind, kops, eksctl and kubeadm configurations
// are. A file without them still loads (the first releases had none), with a deprecation warning.
const (
	APIVersion = "irsa.irsa-anywhere.io/v1alpha1"
	Kind       = "Config"
)

// Config is what irsa sets up: the declarative irsa.yaml, with command-line flags laid over it.
type Config struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`

	// ClusterName names the cluster; it is the value of the ownership tag on every AWS object irsa creates.
	ClusterName string `json:"clusterName"`
	Region      string `json:"region"`
	// Bucket holds the issuer's documents.
	Bucket string `json:"bucket"`
	// IssuerURL is the service account issuer. Empty means the bucket's virtual-hosted HTTPS URL (s3-public
	// hosting) or the CloudFront distribution's (cloudfront hosting).
	IssuerURL string `json:"issuerURL,omitempty"`
	// Issuer says how the documents are served: a public bucket, or a private one behind CloudFront.
	Issuer IssuerConfig `json:"issuer,omitempty"`
	// Audience is the token audience and the IAM provider's client ID. Empty means DefaultAudience.
	Audience string `json:"audience,omitempty"`
	// Thumbprints are the provider's certificate thumbprints. Empty means taken from the issuer host's TLS chain.
	Thumbprints []string `json:"thumbprints,omitempty"`
	// AWSEndpointURL points every AWS client at an emulator; S3 then uses path-style addressing.
	AWSEndpointURL string `json:"awsEndpointURL,omitempty"`

	// PublicKeyFiles feed the JWKS when the keys do not come from the cluster.
	PublicKeyFiles []string `json:"publicKeyFiles,omitempty"`
	// KeyDir is where the keys stage writes or finds the signing keypair (sa-signer.key, sa-signer.pub).
	KeyDir string `json:"keyDir,omitempty"`
	// LegacyEmptyKID publishes a copy of every key with an empty kid, for clusters older than Kubernetes 1.16.
	LegacyEmptyKID bool `json:"legacyEmptyKID,omitempty"`

	Kubeconfig  string `json:"kubeconfig,omitempty"`
	Context     string `json:"context,omitempty"`
	ClusterType string `json:"clusterType,omitempty"`
	// SigningKey is "cluster" (keep the cluster's own key), "generate", or a private key file.
	SigningKey string `json:"signingKey,omitempty"`

	// Image is the irsa image the apiserver stage runs on control-plane nodes.
	Image string `json:"image,omitempty"`
	// AcceptIssuerReplacement lets the apiserver stage replace the issuer of an EKS Anywhere cluster, which holds
	// one issuer only: running pods' tokens stop authenticating until the kubelet refreshes them.
	AcceptIssuerReplacement bool `json:"acceptIssuerReplacement,omitempty"`

	// Images mirrors every image to a registry and sets pull secrets (air-gapped clusters).
	Images ImagesConfig `json:"images,omitempty"`

	Webhook  WebhookConfig `json:"webhook,omitempty"`
	Verify   VerifyConfig  `json:"verify,omitempty"`
	Bindings []Binding     `json:"bindings,omitempty"`

	// envS3Endpoint is the S3 endpoint the AWS environment configures (SetEnvironmentS3Endpoint).
	envS3Endpoint string
}

// SetEnvironmentS3Endpoint tells Defaults the S3 endpoint the AWS environment configures ($AWS_ENDPOINT_URL_S3,
// $AWS_ENDPOINT_URL or the profile's, as awsclient.S3Endpoint resolves it): without AWSEndpointURL, the default issuer
// is then on it, where the bucket is served, rather than on AWS's S3.
func (c *Config) SetEnvironmentS3Endpoint(url string) { c.envS3Endpoint = url }

// s3Endpoint is the endpoint the bucket is served from: AWSEndpointURL, or the environment's; empty for AWS's S3.
func (c *Config) s3Endpoint() string {
	if c.AWSEndpointURL != "" {
		return c.AWSEndpointURL
	}
	return c.envS3Endpoint
}

// WebhookConfig tunes the pod identity webhook deployment.
type WebhookConfig struct {
	Image    string `json:"image,omitempty"`
	Replicas int32  `json:"replicas,omitempty"`
}

// VerifyConfig tunes the verify Job.
type VerifyConfig struct {
	Image   string   `json:"image,omitempty"`
	Command []string `json:"command,omitempty"`
	// PodEndpointURL is the AWS endpoint pods use (emulators); empty means real AWS.
	PodEndpointURL string `json:"podEndpointURL,omitempty"`
	// PodSTSEndpointURL overrides the STS endpoint for pods (the strict STS gate).
	PodSTSEndpointURL string `json:"podSTSEndpointURL,omitempty"`
	// PodCABundle is a PEM file pods trust for PodEndpointURL.
	PodCABundle string `json:"podCABundle,omitempty"`
}

// Binding grants the ServiceAccount Namespace/ServiceAccount an IAM role.
type Binding struct {
	Namespace      string   `json:"namespace"`
	ServiceAccount string   `json:"serviceAccount"`
	PolicyARNs     []string `json:"policyARNs,omitempty"`
	// InlinePolicy is a JSON policy document attached to the role as an inline policy.
	InlinePolicy string `json:"inlinePolicy,omitempty"`
	// RoleName defaults to RoleNameFor(cluster, namespace, service account).
	RoleName string `json:"roleName,omitempty"`
	// Audience overrides the token audience for this ServiceAccount (eks.amazonaws.com/audience) and in its role's
	// trust policy; the IAM provider must list it as a client ID.
	Audience string `json:"audience,omitempty"`
	// STSRegionalEndpoints sets eks.amazonaws.com/sts-regional-endpoints.
	STSRegionalEndpoints *bool `json:"stsRegionalEndpoints,omitempty"`
	// TokenExpiration sets eks.amazonaws.com/token-expiration, such as "1h" (at least 10m).
	TokenExpiration string `json:"tokenExpiration,omitempty"`
	// CreateServiceAccount lets irsa create the ServiceAccount (and its namespace) when it is missing; otherwise a
	// missing one is an error, so a typo never makes a new ServiceAccount (eksctl and local-irsa ask the same way).
	CreateServiceAccount bool `json:"createServiceAccount,omitempty"`

	// TrustProviders are other clusters' IAM OIDC providers the role trusts too, each a provider ARN or an issuer
	// URL: the trust policy gets one statement per provider, this cluster's first (one role, several clusters).
	TrustProviders []string `json:"trustProviders,omitempty"`
	// PermissionsBoundary is a managed policy ARN set as the role's permissions boundary.
	PermissionsBoundary string `json:"permissionsBoundary,omitempty"`
	// Tags are tags of the role besides irsa's ownership tags.
	Tags map[string]string `json:"tags,omitempty"`
	// RoleARN binds an existing role that irsa does not own: irsa adds (and unbind removes) only its own trust
	// statements, identified by their Sid, and never changes or deletes anything else on it.
	RoleARN string `json:"roleARN,omitempty"`
}

// Load reads an irsa.yaml file. Unknown fields are errors naming the field and its line, so a typo does not silently
// fall back to a default; field names match exactly (fieldErrors says why). An
// apiVersion other than APIVersion, or a kind other than Kind, is an error; a file with neither loads, and warnings
// says it should declare them.
func Load(path string) (c *Config, warnings []string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config %q: %w", path, err)
	}
	c = &Config{}
	if errs := fieldErrors(data, reflect.TypeFor[Config]()); len(errs) > 0 {
		return nil, nil, fmt.Errorf("config %q:\n  %s", path, strings.Join(errs, "\n  "))
	}
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		return nil, nil, fmt.Errorf("parse config %q: %s", path, yamlError(err))
	}
	switch {
	case c.APIVersion == "" && c.Kind == "":
		warnings = append(warnings, fmt.Sprintf("config %q has no apiVersion and kind: unversioned files are deprecated; add\n  apiVersion: %s\n  kind: %s", path, APIVersion, Kind))
	case c.APIVersion != APIVersion:
		return nil, nil, fmt.Errorf("config %q: apiVersion %q: must be %s", path, c.APIVersion, APIVersion)
	case c.Kind != Kind:
		return nil, nil, fmt.Errorf("config %q: kind %q: must be %s", path, c.Kind, Kind)
	}
	return c, warnings, nil
}

// yamlError is err without the JSON vocabulary sigs.k8s.io/yaml's conversion adds ("error unmarshaling JSON: while
// decoding JSON: json: cannot unmarshal string into Go struct field Config.bindings of type []config.Binding"): the
// file is YAML, and the user wrote YAML.
func yamlError(err error) string {
	msg := err.Error()
	for _, p := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	msg = strings.ReplaceAll(msg, "Go struct field Config.", "field ")
	msg = strings.ReplaceAll(msg, "Go value of type", "a field of type")
	return msg
}

// Defaults fills in what was left empty.
func (c *Config) Defaults() {
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	c.defaultIssuer() // with cloudfront hosting the issuer is the distribution's, not the bucket's
	if !c.CloudFront() && c.IssuerURL == "" && c.Bucket != "" && c.Region != "" && c.s3Endpoint() == "" {
		c.IssuerURL = BucketIssuerURL(c.Bucket, c.Region)
	}
	if !c.CloudFront() && c.IssuerURL == "" && c.Bucket != "" && c.s3Endpoint() != "" {
		c.IssuerURL = strings.TrimSuffix(c.s3Endpoint(), "/") + "/" + c.Bucket
	}
	if c.SigningKey == "" {
		c.SigningKey = "cluster"
	}
	if c.Image == "" {
		c.Image = DefaultIrsaImage
	}
	if c.Webhook.Image == "" {
		c.Webhook.Image = DefaultWebhookImage
	}
	if c.Webhook.Replicas == 0 {
		c.Webhook.Replicas = 2
	}
	if c.Verify.Image == "" {
		c.Verify.Image = DefaultVerifyImage
	}
	for i := range c.Bindings {
		if c.Bindings[i].RoleName == "" && c.Bindings[i].RoleARN != "" {
			_, c.Bindings[i].RoleName = SplitRoleARN(c.Bindings[i].RoleARN)
		}
		if c.Bindings[i].RoleName == "" {
			c.Bindings[i].RoleName = RoleNameFor(c.ClusterName, c.Bindings[i].Namespace, c.Bindings[i].ServiceAccount)
		}
	}
}

// issuerFromEndpoint says whether the issuer URL is the one Defaults derives from the emulator endpoint.
func (c *Config) issuerFromEndpoint() bool {
	return c.s3Endpoint() != "" && c.IssuerURL == strings.TrimSuffix(c.s3Endpoint(), "/")+"/"+c.Bucket
}

// BucketIssuerURL is the virtual-hosted HTTPS URL of bucket in region.
func BucketIssuerURL(bucket, region string) string {
	if region == "us-east-1" {
		return "https://" + bucket + ".s3.amazonaws.com"
	}
	return "https://" + bucket + ".s3." + region + ".amazonaws.com"
}

// Validate checks every field before anything is written. The AWS side needs a cluster name, a region, a bucket and an
// issuer URL.
func (c *Config) Validate() error {
	var errs []string
	add := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	add(ValidateClusterName(c.ClusterName))
	add(ValidateRegion(c.Region))
	add(ValidateBucketName(c.Bucket))
	if c.AWSEndpointURL != "" {
		add(ValidateEndpointURL(c.AWSEndpointURL))
	}
	if c.IssuerURL != "" || !c.CloudFront() { // a cloudfront issuer without a domain is known once its distribution exists
		if err := ValidateIssuerURL(c.IssuerURL); err != nil && c.issuerFromEndpoint() {
			// The default issuer of an emulator endpoint is the endpoint's bucket URL; over http IAM refuses it.
			errs = append(errs, fmt.Sprintf("%v: it is the default issuer for S3 endpoint %s (--aws-endpoint-url, awsEndpointURL, $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL); give an https --issuer-url (issuerURL in irsa.yaml) that serves bucket %s, or an https endpoint", err, c.s3Endpoint(), c.Bucket))
		} else {
			add(err)
		}
	}
	errs = append(errs, c.validateIssuer()...)
	add(ValidateAudience(c.Audience))
	add(ValidateThumbprints(c.Thumbprints))
	if c.Webhook.Replicas < 0 {
		errs = append(errs, fmt.Sprintf("webhook.replicas %d: must be at least 1 (0 or unset means 2)", c.Webhook.Replicas))
	}
	switch c.SigningKey {
	case "cluster", "generate":
	case "":
		errs = append(errs, "signing key is empty: must be cluster, generate or a private key FILE")
	}
	if c.ClusterType != "" {
		add(ValidateClusterType(c.ClusterType))
	}
	seen := map[string]bool{}
	for _, b := range c.Bindings {
		add(b.Validate())
		key := b.Namespace + "/" + b.ServiceAccount
		if seen[key] {
			errs = append(errs, fmt.Sprintf("binding %q is listed twice: each service account has one binding", key))
		}
		seen[key] = true
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// Validate checks one binding.
func (b Binding) Validate() error {
	ref := b.Namespace + "/" + b.ServiceAccount
	if err := ValidateDNS1123Label("namespace", b.Namespace); err != nil {
		return fmt.Errorf("binding %q: %w", ref, err)
	}
	if err := ValidateDNS1123Subdomain("service account", b.ServiceAccount); err != nil {
		return fmt.Errorf("binding %q: %w", ref, err)
	}
	if b.RoleName != "" {
		if err := ValidateRoleName(b.RoleName); err != nil {
			return fmt.Errorf("binding %q: %w", ref, err)
		}
	}
	for _, arn := range b.PolicyARNs {
		if err := ValidatePolicyARN(arn); err != nil {
			return fmt.Errorf("binding %q: %w", ref, err)
		}
	}
	if b.InlinePolicy != "" {
		if err := ValidatePolicyDocument(b.InlinePolicy); err != nil {
			return fmt.Errorf("binding %q: %w", ref, err)
		}
	}
	if b.Audience != "" {
		if err := ValidateAudience(b.Audience); err != nil {
			return fmt.Errorf("binding %q: %w", ref, err)
		}
	}
	if b.TokenExpiration != "" {
		d, err := time.ParseDuration(b.TokenExpiration)
		if err != nil || d < 10*time.Minute || d > 48*time.Hour {
			return fmt.Errorf("binding %q: token expiration %q: must be a duration from 10m to 48h (the kubelet's and the webhook's bounds)", ref, b.TokenExpiration)
		}
	}
	if err := b.validateRoleOptions(); err != nil {
		return fmt.Errorf("binding %q: %s", ref, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return nil
}
