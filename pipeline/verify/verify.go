// Package verify proves IRSA works end to end, the runbook's check automated: a dedicated ServiceAccount bound to a
// role with AmazonS3ReadOnlyAccess, a pod that calls STS and lists S3 with the web identity the webhook injected, and
// a Report that passes only if the pod was mutated as expected, the caller was the assumed role and the issuer bucket
// was listed.
//
// The runbook runs a Job; irsa runs a bare pod placed on a Ready node. Right after apply restarts kube-apiserver,
// kube-controller-manager and kube-scheduler have lost their leader leases and take 18-24 s to win them back
// (measured on a kubeadm node): a Job would wait for both, a placed pod needs only the apiserver and the kubelet.
//
// The verify ServiceAccount lives outside config.WebhookNamespace on purpose: the webhook skips its own namespace.
package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/irsa-anywhere/irsa/pipeline/bindings"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// Defaults.
const (
	DefaultNamespace      = "default"
	DefaultServiceAccount = "irsa-verify"
	// S3ReadOnlyPolicyARN is the only permission the verify role gets: enough to list buckets.
	S3ReadOnlyPolicyARN = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
	// ContainerName is the verify container in the verify pod.
	ContainerName = "verify"
	// CAMountPath is where the CA bundle ConfigMap is mounted; AWS_CA_BUNDLE points at CAMountPath/ca.pem.
	CAMountPath = "/etc/irsa-verify"
	// NameLabel marks the verify pod and its ConfigMap.
	NameLabel = "app.kubernetes.io/name"
)

// DefaultCommand runs in DefaultVerifyImage (aws-cli). `irsa probe` prints the same.
var DefaultCommand = []string{"sh", "-c", "aws sts get-caller-identity --output json && aws s3 ls"}

// injectionTimeout bounds the wait for the webhook to inject into pods of the verify ServiceAccount.
var injectionTimeout = 90 * time.Second

// ProbeCommand runs `irsa probe` in irsa's own image (hack/image puts the binary at /usr/local/bin/irsa): the verify
// command for clusters that can't pull the aws-cli image. It prints what DefaultCommand prints.
var ProbeCommand = []string{"/usr/local/bin/irsa", "probe"}

// Roles is the AWS half the verify stage needs; *roles.Manager implements it.
type Roles interface {
	// Ensure creates or updates the role for b (trusting b's ServiceAccount, with b.PolicyARNs attached).
	Ensure(ctx context.Context, b config.Binding) ([]stage.Change, error)
	// RoleARN is the ARN of b's role.
	RoleARN(ctx context.Context, b config.Binding) (string, error)
	// Remove deletes the role irsa created under roleName; a missing role is already removed.
	Remove(ctx context.Context, b config.Binding) ([]stage.Change, error)
}

// Options configure a verification. Zero values take the defaults noted.
type Options struct {
	// ClusterName labels the objects and names the role (config.RoleNameFor). Required.
	ClusterName string
	// Bucket is the issuer bucket the listing must contain. Required.
	Bucket string
	// Namespace default DefaultNamespace (it must not be the webhook's namespace); ServiceAccount default
	// DefaultServiceAccount.
	Namespace      string
	ServiceAccount string
	// Image default config.DefaultVerifyImage; Command default DefaultCommand.
	Image   string
	Command []string
	// ImagePullSecrets name Secrets in Namespace the Job's pod pulls Image with (a private mirror).
	ImagePullSecrets []string
	// Audience the projected token must carry, default config.DefaultAudience.
	Audience string
	// PolicyARN attached to the verify role, default S3ReadOnlyPolicyARN.
	PolicyARN string
	// STSEndpoint and S3Endpoint become AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL_S3 in the pod (emulators).
	STSEndpoint string
	S3Endpoint  string
	// CABundle, PEM, is mounted from a ConfigMap and named by AWS_CA_BUNDLE (emulators with their own CA).
	CABundle []byte
	// Timeout bounds the wait for the pod, default 5m.
	Timeout time.Duration
	// Keep leaves the pod, ServiceAccount, ConfigMap and role in place after the run, for debugging.
	Keep bool
}

// Stage is the verify stage.
type Stage struct {
	client kubernetes.Interface
	roles  Roles
	opts   Options
	log    *slog.Logger
	report *Report
	// podLogs reads a container's logs; a test without a kubelet replaces it.
	podLogs func(ctx context.Context, namespace, pod, container string) (string, error)
	// createPod creates the verify pod; a test without the webhook replaces it to play the webhook's mutation.
	createPod func(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error)
	// roleARN is set by Prepare: the role exists and the ServiceAccount is bound.
	roleARN string
}

var (
	_ stage.Stage    = (*Stage)(nil)
	_ stage.Preparer = (*Stage)(nil)
)

// New validates opts and returns the stage.
func New(client kubernetes.Interface, roles Roles, opts Options, log *slog.Logger) (*Stage, error) {
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.ServiceAccount == "" {
		opts.ServiceAccount = DefaultServiceAccount
	}
	if opts.Image == "" {
		opts.Image = config.DefaultVerifyImage
	}
	if len(opts.Command) == 0 {
		opts.Command = DefaultCommand
	}
	if opts.Audience == "" {
		opts.Audience = config.DefaultAudience
	}
	if opts.PolicyARN == "" {
		opts.PolicyARN = S3ReadOnlyPolicyARN
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if opts.ClusterName == "" {
		errs = append(errs, errors.New("verify: cluster name is required"))
	}
	if opts.Bucket == "" {
		errs = append(errs, errors.New("verify: the issuer bucket is required (the listing must contain it)"))
	}
	if opts.Namespace == config.WebhookNamespace {
		errs = append(errs, fmt.Errorf("verify: namespace %q is the webhook's own, which the webhook never mutates: use another", opts.Namespace))
	}
	if roles == nil {
		errs = append(errs, errors.New("verify: no IAM roles backend"))
	}
	if err := (bindings.Binding{Namespace: opts.Namespace, ServiceAccount: opts.ServiceAccount}).ValidateNames(); err != nil {
		errs = append(errs, fmt.Errorf("verify: %w", err))
	}
	for _, ps := range opts.ImagePullSecrets {
		if err := config.ValidateDNS1123Subdomain("image pull secret", ps); err != nil {
			errs = append(errs, fmt.Errorf("verify: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Stage{client: client, roles: roles, opts: opts, log: log}
	s.podLogs = s.readLogs
	s.createPod = func(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
		return client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{FieldManager: config.FieldManager})
	}
	return s, nil
}

// Name implements stage.Stage.
func (s *Stage) Name() string { return stage.Verify }

// Report is the last run's report, nil before Apply or Run.
func (s *Stage) Report() *Report { return s.report }

func (s *Stage) binding() config.Binding {
	return config.Binding{
		Namespace: s.opts.Namespace, ServiceAccount: s.opts.ServiceAccount,
		PolicyARNs: []string{s.opts.PolicyARN},
		RoleName:   config.RoleNameFor(s.opts.ClusterName, s.opts.Namespace, s.opts.ServiceAccount),
	}
}

func (s *Stage) labels() map[string]string {
	return map[string]string{config.ManagedByTagKey: config.ManagedByValue, config.ClusterLabel: s.opts.ClusterName, NameLabel: DefaultServiceAccount}
}

func (s *Stage) caConfigMap() string { return s.opts.ServiceAccount + "-ca" }

// Plan implements stage.Stage: a verification always runs a new pod with a role that exists only for the run.
func (s *Stage) Plan(context.Context) ([]stage.Change, error) {
	// A verification is a check, not state: what it creates (role, ServiceAccount, Job) is gone again when it
	// ends, so a plan of an applied setup has nothing to change.
	return nil, nil
}

// Apply implements stage.Stage: it runs the verification and fails unless the report passes. Report() holds the
// report either way.
func (s *Stage) Apply(ctx context.Context) ([]stage.Change, error) {
	r, changes, err := s.Run(ctx)
	if err != nil {
		return changes, err
	}
	if !r.Pass {
		return changes, fmt.Errorf("verify: FAIL: %s (run with --keep and inspect pod %s)", strings.Join(r.Failed(), ", "), r.Pod)
	}
	if s.opts.Keep {
		return changes, nil
	}
	// Everything the run made is removed again: it leaves nothing changed.
	return nil, nil
}

// Prepare implements stage.Preparer: it makes the role, binds the verify ServiceAccount and waits until the webhook
// injects into its pods, so that Run only has to run the pod. The runner calls it before the apiserver restarts:
// right after a restart the webhook's ServiceAccount informer takes 20-30 s to reconnect (measured on a kubeadm node)
// and would not see a ServiceAccount made then, while one it already cached keeps working. Run prepares by itself
// when Prepare was not called.
func (s *Stage) Prepare(ctx context.Context) ([]stage.Change, error) {
	b := s.binding()
	var changes []stage.Change
	c, err := s.roles.Ensure(ctx, b)
	changes = append(changes, c...)
	if err != nil {
		return changes, fmt.Errorf("verify: role %s: %w", b.RoleName, err)
	}
	roleARN, err := s.roles.RoleARN(ctx, b)
	if err != nil {
		return changes, fmt.Errorf("verify: role %s: %w", b.RoleName, err)
	}
	sb := bindings.Binding{Namespace: s.opts.Namespace, ServiceAccount: s.opts.ServiceAccount, RoleARN: roleARN, ClusterName: s.opts.ClusterName}
	if s.opts.Audience != config.DefaultAudience {
		sb.Audience = s.opts.Audience
	}
	c, err = bindings.BindServiceAccount(ctx, s.client, sb)
	changes = append(changes, c...)
	if err != nil {
		return changes, fmt.Errorf("verify: %w", err)
	}
	if len(s.opts.CABundle) > 0 {
		cm := corev1ac.ConfigMap(s.caConfigMap(), s.opts.Namespace).WithLabels(s.labels()).WithData(map[string]string{"ca.pem": string(s.opts.CABundle)})
		if _, err := s.client.CoreV1().ConfigMaps(s.opts.Namespace).Apply(ctx, cm, metav1.ApplyOptions{FieldManager: config.FieldManager, Force: true}); err != nil {
			return changes, fmt.Errorf("verify: apply configmap %s/%s: %w", s.opts.Namespace, s.caConfigMap(), err)
		}
	}
	// A pod created before the webhook is in the admission path runs without credentials (the webhook fails
	// open): wait until a dry run shows the injection, and let the report name the failure if it never comes.
	injectStart := time.Now()
	if err := bindings.WaitInjected(ctx, s.client, s.opts.Namespace, s.opts.ServiceAccount, roleARN, injectionTimeout); err != nil {
		s.log.Warn("verify: injection not seen before the pod", "error", err)
	} else {
		s.log.Info("verify: the webhook injects", "waited", time.Since(injectStart).Round(time.Millisecond))
	}
	s.roleARN = roleARN
	return changes, nil
}

// Run prepares (unless Prepare did), runs the pod, waits for it and evaluates it; the role, ServiceAccount and pod
// are removed afterwards unless Keep. The error is for failures to run at all; a verification that ran and failed
// returns a report with Pass false.
func (s *Stage) Run(ctx context.Context) (*Report, []stage.Change, error) {
	start := time.Now()
	s.log.Info("verify: starting", "serviceAccount", s.opts.Namespace+"/"+s.opts.ServiceAccount, "image", s.opts.Image)
	var changes []stage.Change
	if !s.opts.Keep {
		defer func() {
			// Cleanup must run even when ctx was cancelled or timed out.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			c, err := s.Delete(cctx)
			changes = append(changes, c...)
			if err != nil {
				s.log.Warn("verify: cleanup failed", "error", err)
			}
			s.roleARN = ""
		}()
	}
	if s.roleARN == "" {
		c, err := s.Prepare(ctx)
		changes = append(changes, c...)
		if err != nil {
			return nil, changes, err
		}
	}
	roleARN := s.roleARN
	want, err := s.pod(ctx)
	if err != nil {
		return nil, changes, err
	}
	created, err := s.createPod(ctx, want)
	if err != nil {
		return nil, changes, fmt.Errorf("verify: create pod in %s: %w", s.opts.Namespace, err)
	}
	changes = append(changes, stage.Change{Action: stage.Create, Kind: "pod", Name: created.Namespace + "/" + created.Name})
	s.log.Info("verify: pod created", "pod", created.Name, "node", created.Spec.NodeName)

	podStart := time.Now()
	pod, waitErr := s.waitPod(ctx, created.Name)
	if pod == nil {
		pod = created
	}
	s.log.Info("verify: pod finished", "pod", created.Name, "phase", pod.Status.Phase, "duration", time.Since(podStart).Round(time.Millisecond))
	logs := ""
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		if logs, err = s.podLogs(ctx, pod.Namespace, pod.Name, ContainerName); err != nil {
			logs = fmt.Sprintf("(logs unavailable: %v)", err)
		}
	}
	r := Evaluate(pod, logs, Expect{RoleARN: roleARN, Audience: s.opts.Audience, Bucket: s.opts.Bucket, Container: ContainerName})
	r.Pod = pod.Namespace + "/" + pod.Name
	r.ServiceAccount = s.opts.Namespace + "/" + s.opts.ServiceAccount
	if waitErr != nil {
		r.Pass = false
		r.Checks[0] = Check{Name: CheckPod, OK: false, Detail: waitErr.Error()}
		r.Logs = logs
	}
	if !r.Pass {
		r.Events = s.events(ctx, pod)
	}
	s.report = &r
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	s.log.Info("verify: done", "result", verdict, "caller", r.CallerARN, "duration", time.Since(start).Round(time.Millisecond))
	return &r, changes, nil
}

// pod is the verify pod, placed on a Ready node (see the package documentation); with no Ready node it is left to the
// scheduler.
func (s *Stage) pod(ctx context.Context) (*corev1.Pod, error) {
	env := []corev1.EnvVar{}
	if s.opts.STSEndpoint != "" {
		env = append(env, corev1.EnvVar{Name: "AWS_ENDPOINT_URL_STS", Value: s.opts.STSEndpoint})
	}
	if s.opts.S3Endpoint != "" {
		env = append(env, corev1.EnvVar{Name: "AWS_ENDPOINT_URL_S3", Value: s.opts.S3Endpoint})
	}
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	if len(s.opts.CABundle) > 0 {
		env = append(env, corev1.EnvVar{Name: "AWS_CA_BUNDLE", Value: CAMountPath + "/ca.pem"})
		volumes = append(volumes, corev1.Volume{Name: "ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: s.caConfigMap()}}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "ca", MountPath: CAMountPath, ReadOnly: true})
	}
	node, err := s.node(ctx)
	if err != nil {
		return nil, err
	}
	deadline := int64(s.opts.Timeout / time.Second)
	var pullSecrets []corev1.LocalObjectReference
	for _, ps := range s.opts.ImagePullSecrets {
		pullSecrets = append(pullSecrets, corev1.LocalObjectReference{Name: ps})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: s.opts.ServiceAccount + "-", Namespace: s.opts.Namespace, Labels: s.labels()},
		Spec: corev1.PodSpec{
			NodeName:              node,
			ImagePullSecrets:      pullSecrets,
			ServiceAccountName:    s.opts.ServiceAccount,
			RestartPolicy:         corev1.RestartPolicyNever,
			ActiveDeadlineSeconds: &deadline,
			// The token file must be readable whatever user the image runs as.
			SecurityContext: &corev1.PodSecurityContext{FSGroup: ptr.To[int64](65532)},
			Containers: []corev1.Container{{
				Name:         ContainerName,
				Image:        s.opts.Image,
				Command:      s.opts.Command,
				Env:          env,
				VolumeMounts: mounts,
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")}},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
			Volumes: volumes,
		},
	}, nil
}

// node picks where the verify pod runs: a Ready, schedulable node without NoExecute taints (the kubelet does not
// check NoSchedule taints for a placed pod, but NoExecute ones evict it), workers before control-plane nodes, by
// name for a stable choice. Empty when there is none.
func (s *Stage) node(ctx context.Context) (string, error) {
	list, err := s.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("verify: list nodes: %w", err)
	}
	var workers, controlPlane []string
	for _, n := range list.Items {
		ready := false
		for _, c := range n.Status.Conditions {
			ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
		}
		noExecute := slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Effect == corev1.TaintEffectNoExecute })
		if !ready || noExecute || n.Spec.Unschedulable {
			continue
		}
		if _, cp := n.Labels["node-role.kubernetes.io/control-plane"]; cp {
			controlPlane = append(controlPlane, n.Name)
		} else {
			workers = append(workers, n.Name)
		}
	}
	slices.Sort(workers)
	slices.Sort(controlPlane)
	if all := append(workers, controlPlane...); len(all) > 0 {
		return all[0], nil
	}
	return "", nil
}

// waitPod polls the pod until it succeeds or fails, or the timeout; the timeout error says what the pod showed last.
// It returns the pod as last read.
func (s *Stage) waitPod(ctx context.Context, name string) (*corev1.Pod, error) {
	stage.Waiting(ctx, fmt.Sprintf("verify pod %s/%s to run and finish (up to %s)", s.opts.Namespace, name, s.opts.Timeout))
	last := "not read yet"
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, s.opts.Timeout, true, func(ctx context.Context) (bool, error) {
		p, err := s.client.CoreV1().Pods(s.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if ctx.Err() == nil {
				last = err.Error()
			}
			return false, nil
		}
		pod = p
		switch p.Status.Phase {
		case corev1.PodSucceeded:
			return true, nil
		case corev1.PodFailed:
			return false, fmt.Errorf("pod %s failed: %s %s", name, p.Status.Reason, p.Status.Message)
		}
		last = "phase " + string(p.Status.Phase) + containerState(p, ContainerName)
		return false, nil
	})
	if err != nil && wait.Interrupted(err) {
		return pod, fmt.Errorf("pod %s/%s did not finish within %s (%s)", s.opts.Namespace, name, s.opts.Timeout, last)
	}
	return pod, err
}

func (s *Stage) readLogs(ctx context.Context, namespace, pod, container string) (string, error) {
	b, err := s.client.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("logs of pod %s/%s: %w", namespace, pod, err)
	}
	return string(b), nil
}

// events lists the pod's events, oldest first, as "Reason: message" lines.
func (s *Stage) events(ctx context.Context, pod *corev1.Pod) []string {
	list, err := s.client.CoreV1().Events(s.opts.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", pod.Name).String()})
	if err != nil {
		return []string{fmt.Sprintf("(events unavailable: %v)", err)}
	}
	evs := list.Items
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].LastTimestamp.Before(&evs[j].LastTimestamp) })
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s %s/%s %s: %s", e.Type, strings.ToLower(e.InvolvedObject.Kind), e.InvolvedObject.Name, e.Reason, e.Message))
	}
	return out
}

// Delete implements stage.Stage: it removes the verify pods, ConfigMap, ServiceAccount binding and role.
func (s *Stage) Delete(ctx context.Context) ([]stage.Change, error) {
	var changes []stage.Change
	sel := labels.SelectorFromSet(s.labels()).String()
	pods, err := s.client.CoreV1().Pods(s.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("verify: list pods in %s: %w", s.opts.Namespace, err)
	}
	for _, p := range pods.Items {
		// No grace period: the pod has finished, or is a failed verification being cleaned up.
		err := s.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		if err != nil && !apierrors.IsNotFound(err) {
			return changes, fmt.Errorf("verify: delete pod %s/%s: %w", p.Namespace, p.Name, err)
		}
		changes = append(changes, stage.Change{Action: stage.Delete, Kind: "pod", Name: p.Namespace + "/" + p.Name})
	}
	cm, err := s.client.CoreV1().ConfigMaps(s.opts.Namespace).Get(ctx, s.caConfigMap(), metav1.GetOptions{})
	if err == nil && cm.Labels[config.ManagedByTagKey] == config.ManagedByValue {
		if err := s.client.CoreV1().ConfigMaps(s.opts.Namespace).Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return changes, fmt.Errorf("verify: delete configmap %s/%s: %w", s.opts.Namespace, cm.Name, err)
		}
		changes = append(changes, stage.Change{Action: stage.Delete, Kind: "configmap", Name: s.opts.Namespace + "/" + cm.Name})
	} else if err != nil && !apierrors.IsNotFound(err) {
		return changes, fmt.Errorf("verify: get configmap %s/%s: %w", s.opts.Namespace, s.caConfigMap(), err)
	}
	c, err := bindings.UnbindServiceAccount(ctx, s.client, bindings.Binding{Namespace: s.opts.Namespace, ServiceAccount: s.opts.ServiceAccount})
	changes = append(changes, c...)
	if err != nil {
		return changes, fmt.Errorf("verify: %w", err)
	}
	c, err = s.roles.Remove(ctx, s.binding())
	changes = append(changes, c...)
	if err != nil {
		return changes, fmt.Errorf("verify: remove role %s: %w", s.binding().RoleName, err)
	}
	return changes, nil
}
