package webhook

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/fixtures"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// Ports the webhook listens on inside its pods (unprivileged: the pods run as non-root).
const (
	Port        = 9443
	MetricsPort = 9999
)

// LookupGracePeriod is the webhook's --service-account-lookup-grace-period. v0.6.17 defaults it to 0 (its README
// says 100ms; main.go says 0): a pod whose ServiceAccount the webhook's informer has not seen yet is admitted
// without credentials, which is what happens when a ServiceAccount and its Deployment come in one `kubectl apply`
// (upstream issues #174, #264). With a grace period the webhook fetches the ServiceAccount from the API itself and
// waits for it, so the wait ends as soon as that GET returns (milliseconds on a healthy apiserver) and only pods
// whose ServiceAccount is missing from the cache pay it. 2s covers one whole fetch (upstream gives each GET 1s)
// plus its client-side rate limit (10/s, burst 20: a burst of ~40 pods with new ServiceAccounts), and stays far
// below AdmissionTimeout, so the apiserver never gives up on the webhook first and fails the pod open anyway.
const LookupGracePeriod = 2 * time.Second

// AdmissionTimeout is the registration's timeoutSeconds: how long the apiserver waits for the webhook.
const AdmissionTimeout = 10 * time.Second

// TLSMinVersion is the webhook's --tls-min-version: v0.6.17 otherwise accepts what Go's default allows, and only
// the apiserver ever connects to it, which speaks TLS 1.3.
const TLSMinVersion = "1.2"

// Options configure the webhook deployment. Zero values take the defaults noted.
type Options struct {
	// ClusterName is the value of config.ClusterLabel on every object. Required.
	ClusterName string
	// Namespace default config.WebhookNamespace; Name (Deployment, Service, ServiceAccount) default
	// config.WebhookName.
	Namespace string
	Name      string
	// Image default config.DefaultWebhookImage.
	Image string
	// ImagePullSecrets name Secrets in Namespace the webhook pods pull Image with (a private mirror).
	ImagePullSecrets []string
	// Audience is the webhook's --token-audience, default config.DefaultAudience.
	Audience string
	// Region is --aws-default-region, set as AWS_REGION in mutated pods. Required.
	Region string
	// Replicas default 2.
	Replicas int32
	// TokenExpiration of projected tokens, default 24h, at least 10m (the kubelet's minimum).
	TokenExpiration time.Duration
	// Wait for the Deployment to be available before registering the webhook, and on Delete for the namespace to be
	// gone; off against an apiserver without nodes (tests). Timeout bounds the wait, default 5m.
	Wait    bool
	Timeout time.Duration
	// Now is the clock for certificate renewal, default time.Now.
	Now func() time.Time
	// TLSPolicy default DefaultTLSPolicy.
	TLSPolicy *TLSPolicy
}

// Stage deploys amazon-eks-pod-identity-webhook.
type Stage struct {
	client kubernetes.Interface
	opts   Options
	log    *slog.Logger
	// objects reaches the rendered objects whatever their kind.
	objects *objectClient
}

var _ stage.Stage = (*Stage)(nil)

// New validates opts and returns the stage.
func New(client kubernetes.Interface, opts Options, log *slog.Logger) (*Stage, error) {
	if opts.Namespace == "" {
		opts.Namespace = config.WebhookNamespace
	}
	if opts.Name == "" {
		opts.Name = config.WebhookName
	}
	if opts.Image == "" {
		opts.Image = config.DefaultWebhookImage
	}
	if opts.Audience == "" {
		opts.Audience = config.DefaultAudience
	}
	if opts.Replicas == 0 {
		opts.Replicas = 2
	}
	if opts.TokenExpiration == 0 {
		opts.TokenExpiration = 24 * time.Hour
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TLSPolicy == nil {
		p := DefaultTLSPolicy
		opts.TLSPolicy = &p
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if msgs := validation.IsValidLabelValue(opts.ClusterName); opts.ClusterName == "" || len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("webhook: cluster name %q is not a valid label value %v", opts.ClusterName, msgs))
	}
	for what, v := range map[string]string{"namespace": opts.Namespace, "name": opts.Name} {
		if msgs := validation.IsDNS1123Label(v); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("webhook: %s %q: %s", what, v, strings.Join(msgs, "; ")))
		}
	}
	if err := config.ValidateRegion(opts.Region); err != nil {
		errs = append(errs, fmt.Errorf("webhook: %w", err))
	}
	if strings.ContainsAny(opts.Image, " \t\n\"'") || opts.Image == "" {
		errs = append(errs, fmt.Errorf("webhook: image %q is not an image reference", opts.Image))
	}
	for _, ps := range opts.ImagePullSecrets {
		if msgs := validation.IsDNS1123Subdomain(ps); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("webhook: image pull secret %q: %s", ps, strings.Join(msgs, "; ")))
		}
	}
	if err := config.ValidateAudience(opts.Audience); err != nil {
		errs = append(errs, fmt.Errorf("webhook: %w", err))
	}
	if opts.Replicas < 1 {
		errs = append(errs, fmt.Errorf("webhook: replicas %d: want at least 1", opts.Replicas))
	}
	if opts.TokenExpiration < 10*time.Minute {
		errs = append(errs, fmt.Errorf("webhook: token expiration %s: want at least 10m", opts.TokenExpiration))
	}
	var objects *objectClient
	if client != nil {
		var err error
		if objects, err = newObjectClient(client); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Stage{client: client, opts: opts, log: log, objects: objects}, nil
}

// Name implements stage.Stage.
func (s *Stage) Name() string { return stage.Webhook }

// Labels are the labels on every object the stage creates.
func (s *Stage) Labels() map[string]string {
	return map[string]string{config.ManagedByTagKey: config.ManagedByValue, config.ClusterLabel: s.opts.ClusterName}
}

// manifestValues fill fixtures/webhook.
type manifestValues struct {
	Namespace, Name, Image, Audience, Region, AnnotationPrefix string
	Replicas                                                   int32
	TokenExpiration                                            int64
	Port, MetricsPort                                          int
	LookupGracePeriod, TLSMinVersion                           string
	TimeoutSeconds                                             int
	CACert, CAKey, PreviousCACert, ServingCert, ServingKey     string
	CABundle                                                   string
	ImagePullSecrets                                           []string
}

func (s *Stage) render(m TLSMaterial) ([]object, error) {
	b64 := base64.StdEncoding.EncodeToString
	v := manifestValues{
		Namespace: s.opts.Namespace, Name: s.opts.Name, Image: s.opts.Image, Audience: s.opts.Audience,
		Region: s.opts.Region, AnnotationPrefix: config.AnnotationPrefix, Replicas: s.opts.Replicas,
		TokenExpiration: int64(s.opts.TokenExpiration / time.Second), Port: Port, MetricsPort: MetricsPort,
		LookupGracePeriod: LookupGracePeriod.String(), TLSMinVersion: TLSMinVersion,
		TimeoutSeconds: int(AdmissionTimeout / time.Second),
		CACert:         b64(m.CACert), CAKey: b64(m.CAKey), ServingCert: b64(m.ServingCert), ServingKey: b64(m.ServingKey),
		CABundle: b64(m.CABundle()), ImagePullSecrets: s.opts.ImagePullSecrets,
	}
	if len(m.PreviousCACert) > 0 {
		v.PreviousCACert = b64(m.PreviousCACert)
	}
	return render(fixtures.Webhook, v, s.Labels())
}

func (s *Stage) caSecret() string  { return s.opts.Name + "-ca" }
func (s *Stage) tlsSecret() string { return s.opts.Name + "-tls" }

// currentTLS reads the TLS material stored in the cluster; missing Secrets give empty material.
func (s *Stage) currentTLS(ctx context.Context) (TLSMaterial, error) {
	var m TLSMaterial
	secrets := s.client.CoreV1().Secrets(s.opts.Namespace)
	for _, name := range []string{s.caSecret(), s.tlsSecret()} {
		sec, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return m, fmt.Errorf("read webhook TLS secret %s/%s: %w", s.opts.Namespace, name, err)
		}
		if sec.Labels[config.ManagedByTagKey] != config.ManagedByValue {
			return m, fmt.Errorf("secret %s/%s exists and is not managed by irsa (label %s=%s missing): remove it or choose another webhook namespace",
				s.opts.Namespace, name, config.ManagedByTagKey, config.ManagedByValue)
		}
		if name == s.caSecret() {
			m.CACert, m.CAKey, m.PreviousCACert = sec.Data["ca.crt"], sec.Data["ca.key"], sec.Data["previous-ca.crt"]
		} else {
			m.ServingCert, m.ServingKey = sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey]
		}
	}
	return m, nil
}

// desired computes the objects to apply and why the TLS Secrets change.
func (s *Stage) desired(ctx context.Context) ([]object, []string, error) {
	cur, err := s.currentTLS(ctx)
	if err != nil {
		return nil, nil, err
	}
	m, reasons, err := EnsureTLS(cur, ServingDNSNames(s.opts.Name, s.opts.Namespace), s.opts.Now(), *s.opts.TLSPolicy)
	if err != nil {
		return nil, nil, err
	}
	objs, err := s.render(m)
	return objs, reasons, err
}

// Plan implements stage.Stage: it lists what Apply would change, using server-side dry-run for existing objects.
func (s *Stage) Plan(ctx context.Context) ([]stage.Change, error) {
	return s.run(ctx, true)
}

// Apply implements stage.Stage.
func (s *Stage) Apply(ctx context.Context) ([]stage.Change, error) {
	start := time.Now()
	s.log.Info("webhook: applying", "namespace", s.opts.Namespace, "image", s.opts.Image)
	changes, err := s.run(ctx, false)
	if err != nil {
		return changes, err
	}
	s.log.Info("webhook: applied", "changes", len(changes), "duration", time.Since(start).Round(time.Millisecond))
	return changes, nil
}

func (s *Stage) run(ctx context.Context, dryRun bool) ([]stage.Change, error) {
	objs, tlsReasons, err := s.desired(ctx)
	if err != nil {
		return nil, err
	}
	var changes []stage.Change
	for _, o := range objs {
		if o.Kind == "MutatingWebhookConfiguration" && !dryRun && s.opts.Wait {
			// Register the webhook only once pods can answer it.
			if err := s.waitAvailable(ctx); err != nil {
				return changes, err
			}
		}
		c, err := s.applyOne(ctx, o, dryRun, tlsReasons)
		if err != nil {
			return changes, err
		}
		if c != nil {
			changes = append(changes, *c)
		}
	}
	return changes, nil
}

func (s *Stage) applyOne(ctx context.Context, o object, dryRun bool, tlsReasons []string) (*stage.Change, error) {
	before, err := s.objects.get(ctx, o)
	if err != nil {
		return nil, err
	}
	kind := strings.ToLower(o.Kind)
	name := o.Name
	if o.Namespace != "" {
		name = o.Namespace + "/" + o.Name
	}
	if before != nil && !ownedByIrsa(before) {
		if o.Kind == "Namespace" {
			s.log.Debug("webhook: namespace exists and is not irsa's; using it as is", "namespace", o.Name)
			return nil, nil
		}
		return nil, fmt.Errorf("%s exists and is not managed by irsa (label %s=%s missing): remove it or choose another webhook namespace/name",
			o.ID(), config.ManagedByTagKey, config.ManagedByValue)
	}
	if before == nil && dryRun {
		return &stage.Change{Action: stage.Create, Kind: kind, Name: name}, nil
	}
	if before != nil && !dryRun {
		// A dry run first, so an object that is already as wanted gets no write at all: a no-op apply writes
		// nothing to the cluster.
		preview, err := s.objects.apply(ctx, o, true)
		if err != nil {
			return nil, err
		}
		if len(diffPaths(before, preview)) == 0 {
			return nil, nil
		}
	}
	after, err := s.objects.apply(ctx, o, dryRun)
	if err != nil {
		return nil, err
	}
	if before == nil {
		s.log.Debug("webhook: created", "object", o.ID())
		return &stage.Change{Action: stage.Create, Kind: kind, Name: name}, nil
	}
	if !dryRun && after.GetResourceVersion() == before.GetResourceVersion() {
		return nil, nil
	}
	paths := diffPaths(before, after)
	if len(paths) == 0 {
		return nil, nil
	}
	detail := strings.Join(paths, ", ")
	if o.Kind == "Secret" && len(tlsReasons) > 0 {
		detail = strings.Join(tlsReasons, "; ")
	}
	s.log.Debug("webhook: updated", "object", o.ID(), "fields", detail)
	return &stage.Change{Action: stage.Update, Kind: kind, Name: name, Detail: detail}, nil
}

// waitAvailable polls the Deployment until its pods are updated and available, or the timeout; the error says
// what the Deployment showed last.
func (s *Stage) waitAvailable(ctx context.Context) error {
	stage.Waiting(ctx, fmt.Sprintf("Deployment %s/%s to roll out (%d replicas available, up to %s)", s.opts.Namespace, s.opts.Name, s.opts.Replicas, s.opts.Timeout))
	var last string
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, s.opts.Timeout, true, func(ctx context.Context) (bool, error) {
		d, err := s.client.AppsV1().Deployments(s.opts.Namespace).Get(ctx, s.opts.Name, metav1.GetOptions{})
		switch {
		case err == nil && deploymentAvailable(d):
			return true, nil
		case err == nil:
			last = deploymentStatus(d)
		case ctx.Err() == nil:
			// The deadline cutting this request short is no observation.
			last = err.Error()
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("deployment %s/%s not available after %s (%s): check `kubectl -n %s describe pods -l app.kubernetes.io/name=%s`",
			s.opts.Namespace, s.opts.Name, s.opts.Timeout, last, s.opts.Namespace, s.opts.Name)
	}
	return nil
}

func deploymentAvailable(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.AvailableReplicas == want && st.Replicas == want
}

func deploymentStatus(d *appsv1.Deployment) string {
	st := d.Status
	parts := []string{fmt.Sprintf("%d/%d updated, %d available", st.UpdatedReplicas, st.Replicas, st.AvailableReplicas)}
	for _, c := range d.Status.Conditions {
		if c.Status != corev1.ConditionTrue || c.Type == appsv1.DeploymentReplicaFailure {
			parts = append(parts, fmt.Sprintf("%s=%s: %s", c.Type, c.Status, c.Message))
		}
	}
	return strings.Join(parts, "; ")
}

// Delete implements stage.Stage: it removes the objects that carry irsa's label, the webhook registration first,
// and the namespace only when irsa created it and nothing else lives in it.
func (s *Stage) Delete(ctx context.Context) ([]stage.Change, error) {
	objs, err := s.render(TLSMaterial{})
	if err != nil {
		return nil, err
	}
	var changes []stage.Change
	for i := len(objs) - 1; i >= 0; i-- {
		o := objs[i]
		cur, err := s.objects.get(ctx, o)
		if err != nil {
			return changes, err
		}
		if cur == nil || deleting(cur) || !ownedByIrsa(cur) || cur.GetLabels()[config.ClusterLabel] != s.opts.ClusterName {
			continue
		}
		if o.Kind == "Namespace" {
			if foreign, err := s.foreignObjects(ctx); err != nil {
				return changes, err
			} else if foreign != "" {
				s.log.Info("webhook: keeping namespace that holds objects irsa did not create", "namespace", o.Name, "object", foreign)
				continue
			}
		}
		if err := s.objects.delete(ctx, o); err != nil {
			return changes, err
		}
		name := o.Name
		if o.Namespace != "" {
			name = o.Namespace + "/" + o.Name
		}
		changes = append(changes, stage.Change{Action: stage.Delete, Kind: strings.ToLower(o.Kind), Name: name})
		if o.Kind == "Namespace" && s.opts.Wait {
			// Teardown ends when the namespace is gone: an apply right after would fail on a terminating one.
			if err := s.waitNamespaceGone(ctx, o.Name); err != nil {
				return changes, err
			}
		}
	}
	return changes, nil
}

func (s *Stage) waitNamespaceGone(ctx context.Context, name string) error {
	timeout := s.opts.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	stage.Waiting(ctx, fmt.Sprintf("namespace %s to be deleted (up to %s)", name, timeout))
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		_, err := s.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("namespace %s still terminating after %s: look at `kubectl get all -n %s`", name, timeout, name)
	}
	return nil
}

// foreignObjects names a ServiceAccount or pod in the webhook namespace that irsa did not create, or "".
func (s *Stage) foreignObjects(ctx context.Context) (string, error) {
	sas, err := s.client.CoreV1().ServiceAccounts(s.opts.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list service accounts in %s: %w", s.opts.Namespace, err)
	}
	for _, sa := range sas.Items {
		if sa.Name != "default" && sa.Labels[config.ManagedByTagKey] != config.ManagedByValue {
			return "serviceaccount " + sa.Name, nil
		}
	}
	pods, err := s.client.CoreV1().Pods(s.opts.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list pods in %s: %w", s.opts.Namespace, err)
	}
	for _, p := range pods.Items {
		if p.Labels[config.ManagedByTagKey] != config.ManagedByValue {
			return "pod " + p.Name, nil
		}
	}
	return "", nil
}
