package config

// Values that must agree across stages. A change here changes them everywhere at once: the audience the webhook
// projects into tokens is the client ID IAM trusts and the audience the apiserver accepts.
const (
	// DefaultAudience is the token audience: the webhook's --token-audience, the IAM provider's client ID, a value
	// of the apiserver's --api-audiences and the :aud condition in trust policies.
	DefaultAudience = "sts.amazonaws.com"

	// DiscoveryKey and JWKSKey are the object keys of the issuer's documents, relative to the issuer URL.
	DiscoveryKey = ".well-known/openid-configuration"
	JWKSKey      = "keys.json"

	// Service account annotations read by amazon-eks-pod-identity-webhook.
	RoleARNAnnotation         = "eks.amazonaws.com/role-arn"
	AudienceAnnotation        = "eks.amazonaws.com/audience"
	STSRegionalAnnotation     = "eks.amazonaws.com/sts-regional-endpoints"
	TokenExpirationAnnotation = "eks.amazonaws.com/token-expiration"
	AnnotationPrefix          = "eks.amazonaws.com"

	// TokenMountPath and TokenFile are where the webhook mounts the projected token in a pod.
	TokenMountPath = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
	TokenFile      = "token"
	TokenVolume    = "aws-iam-token"

	// OwnerTagKey tags every AWS object irsa creates with the cluster name; teardown finds objects by it.
	OwnerTagKey = "irsa.irsa-anywhere.io/cluster"
	// ManagedByTagKey/ManagedByValue mark AWS objects (tag) and Kubernetes objects (label) as irsa's.
	ManagedByTagKey = "app.kubernetes.io/managed-by"
	ManagedByValue  = "irsa"
	// ClusterLabel is the Kubernetes label that carries the cluster name on objects irsa creates.
	ClusterLabel = "irsa.irsa-anywhere.io/cluster"
	// FieldManager is the server-side apply field manager for every Kubernetes object irsa applies.
	FieldManager = "irsa"
	// AnnotatedByIrsa lists, on a ServiceAccount, the annotations irsa set, so unbind removes only those.
	AnnotatedByIrsa = "irsa.irsa-anywhere.io/annotations"

	// WebhookNamespace and WebhookName name the pod identity webhook's objects in the cluster.
	WebhookNamespace = "irsa-system"
	WebhookName      = "pod-identity-webhook"

	// The default images are in images.go.
)
