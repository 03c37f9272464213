// Package verify proves IRSA works end to end, the runbook's check automated: a dedicated ServiceAccount bound to a
// role with AmazonS3ReadOnlyAccess, a Job whose pod calls STS and lists S3 with the web identity the webhook
// injected, and a Report that passes only if the pod was mutated as expected, the caller was the assumed role and
// the issuer bucket was listed.
//
// The verify ServiceAccount lives outside config.WebhookNamespace on purpose: the webhook skips its own namespace.
package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	// ContainerName is the verify container in the Job's pod.
	ContainerName = "verify"
	// CAMountPath is where the CA bundle ConfigMap is mounted; AWS_CA_BUNDLE points at CAMountPath/ca.pem.
	CAMountPath = "/etc/irsa-verify"
	// NameLabel marks the verify Job, its ConfigMap and pods.
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
	// Audience the projected token must carry, default config.DefaultAudience.
	Audience string
	// PolicyARN attached to the verify role, default S3ReadOnlyPolicyARN.
	PolicyARN string
	// STSEndpoint and S3Endpoint become AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL_S3 in the pod (emulators).
	STSEndpoint string
	S3Endpoint  string
	// CABundle, PEM, is mounted from a ConfigMap and named by AWS_CA_BUNDLE (emulators with their own CA).
	CABundle []byte
	// Timeout bounds the wait for the Job, default 5m.
	Timeout time.Duration
	// Keep leaves the Job, ServiceAccount, ConfigMap and role in place after the run, for debugging.
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
}

var _ stage.Stage = (*Stage)(nil)

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
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Stage{client: client, roles: roles, opts: opts, log: log}
	s.podLogs = s.readLogs
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

// Plan implements stage.Stage: a verification always runs a new Job with a role that exists only for the run.
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
		return changes, fmt.Errorf("verify: FAIL: %s (run with --keep and inspect job %s)", strings.Join(r.Failed(), ", "), r.Job)
	}
	if s.opts.Keep {
		return changes, nil
	}
	// Everything the run made is removed again: it leaves nothing changed.
	return nil, nil
}

// Run binds the verify ServiceAccount, runs the Job, waits for it and evaluates it. The error is for failures to
// run at all; a verification that ran and failed returns a report with Pass false.
func (s *Stage) Run(ctx context.Context) (*Report, []stage.Change, error) {
	start := time.Now()
	s.log.Info("verify: starting", "serviceAccount", s.opts.Namespace+"/"+s.opts.ServiceAccount, "image", s.opts.Image)
	b := s.binding()
	var changes []stage.Change
	c, err := s.roles.Ensure(ctx, b)
	changes = append(changes, c...)
	if err != nil {
		return nil, changes, fmt.Errorf("verify: role %s: %w", b.RoleName, err)
	}
	roleARN, err := s.roles.RoleARN(ctx, b)
	if err != nil {
		return nil, changes, fmt.Errorf("verify: role %s: %w", b.RoleName, err)
	}
	sb := bindings.Binding{Namespace: s.opts.Namespace, ServiceAccount: s.opts.ServiceAccount, RoleARN: roleARN, ClusterName: s.opts.ClusterName}
	if s.opts.Audience != config.DefaultAudience {
		sb.Audience = s.opts.Audience
	}
	c, err = bindings.BindServiceAccount(ctx, s.client, sb)
	changes = append(changes, c...)
	if err != nil {
		return nil, changes, fmt.Errorf("verify: %w", err)
	}
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
		}()
	}
	if len(s.opts.CABundle) > 0 {
		cm := corev1ac.ConfigMap(s.caConfigMap(), s.opts.Namespace).WithLabels(s.labels()).WithData(map[string]string{"ca.pem": string(s.opts.CABundle)})
		if _, err := s.client.CoreV1().ConfigMaps(s.opts.Namespace).Apply(ctx, cm, metav1.ApplyOptions{FieldManager: config.FieldManager, Force: true}); err != nil {
			return nil, changes, fmt.Errorf("verify: apply configmap %s/%s: %w", s.opts.Namespace, s.caConfigMap(), err)
		}
	}
	// A pod created before the webhook is in the admission path runs without credentials (the webhook fails
	// open): wait until a dry run shows the injection, and let the report name the failure if it never comes.
	if err := bindings.WaitInjected(ctx, s.client, s.opts.Namespace, s.opts.ServiceAccount, roleARN, injectionTimeout); err != nil {
		s.log.Warn("verify: injection not seen before the job", "error", err)
	}
	job, err := s.client.BatchV1().Jobs(s.opts.Namespace).Create(ctx, s.job(), metav1.CreateOptions{FieldManager: config.FieldManager})
	if err != nil {
		return nil, changes, fmt.Errorf("verify: create job in %s: %w", s.opts.Namespace, err)
	}
	changes = append(changes, stage.Change{Action: stage.Create, Kind: "job", Name: job.Namespace + "/" + job.Name})
	s.log.Debug("verify: job created", "job", job.Name)

	waitErr := s.waitJob(ctx, job.Name)
	pod, err := s.jobPod(ctx, job.Name)
	if err != nil {
		return nil, changes, err
	}
	logs := ""
	if pod != nil {
		if logs, err = s.podLogs(ctx, pod.Namespace, pod.Name, ContainerName); err != nil {
			logs = fmt.Sprintf("(logs unavailable: %v)", err)
		}
	}
	r := Evaluate(pod, logs, Expect{RoleARN: roleARN, Audience: s.opts.Audience, Bucket: s.opts.Bucket, Container: ContainerName})
	r.Job = job.Namespace + "/" + job.Name
	r.ServiceAccount = s.opts.Namespace + "/" + s.opts.ServiceAccount
	if waitErr != nil {
		r.Pass = false
		r.Checks[0] = Check{Name: CheckJob, OK: false, Detail: waitErr.Error()}
		r.Logs = logs
	}
	if !r.Pass {
		r.Events = s.events(ctx, job.Name, pod)
	}
	s.report = &r
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	s.log.Info("verify: done", "result", verdict, "caller", r.CallerARN, "duration", time.Since(start).Round(time.Millisecond))
	return &r, changes, nil
}

func (s *Stage) job() *batchv1.Job {
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
	deadline := int64(s.opts.Timeout / time.Second)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{GenerateName: s.opts.ServiceAccount + "-", Namespace: s.opts.Namespace, Labels: s.labels()},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](0),
			ActiveDeadlineSeconds:   &deadline,
			TTLSecondsAfterFinished: ptr.To[int32](3600),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: s.labels()},
				Spec: corev1.PodSpec{
					ServiceAccountName: s.opts.ServiceAccount,
					RestartPolicy:      corev1.RestartPolicyNever,
					// The token file must be readable whatever user the image runs as.
					SecurityContext: &corev1.PodSecurityContext{FSGroup: ptr.To[int64](65532)},
					Containers: []corev1.Container{{
						Name:         ContainerName,
						Image:        s.opts.Image,
						Command:      s.opts.Command,
						Env:          env,
						VolumeMounts: mounts,
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
					Volumes: volumes,
				},
			},
		},
	}
}

// waitJob polls the Job until it completes or fails, or the timeout; the timeout error says what the Job showed
// last.
func (s *Stage) waitJob(ctx context.Context, name string) error {
	last := "not started"
	err := wait.PollUntilContextTimeout(ctx, time.Second, s.opts.Timeout, true, func(ctx context.Context) (bool, error) {
		j, err := s.client.BatchV1().Jobs(s.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if ctx.Err() == nil {
				last = err.Error()
			}
			return false, nil
		}
		for _, c := range j.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case batchv1.JobComplete:
				return true, nil
			case batchv1.JobFailed:
				return false, fmt.Errorf("job %s failed: %s %s", name, c.Reason, c.Message)
			}
		}
		last = fmt.Sprintf("%d active, %d succeeded, %d failed", j.Status.Active, j.Status.Succeeded, j.Status.Failed)
		return false, nil
	})
	if err != nil && wait.Interrupted(err) {
		return fmt.Errorf("job %s/%s did not finish within %s (%s)", s.opts.Namespace, name, s.opts.Timeout, last)
	}
	return err
}

// jobPod is the Job's newest pod, or nil if it made none.
func (s *Stage) jobPod(ctx context.Context, job string) (*corev1.Pod, error) {
	sel := labels.SelectorFromSet(labels.Set{batchv1.JobNameLabel: job}).String()
	pods, err := s.client.CoreV1().Pods(s.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("verify: list pods of job %s/%s: %w", s.opts.Namespace, job, err)
	}
	if len(pods.Items) == 0 {
		return nil, nil
	}
	sort.Slice(pods.Items, func(i, j int) bool {
		return pods.Items[i].CreationTimestamp.After(pods.Items[j].CreationTimestamp.Time)
	})
	return &pods.Items[0], nil
}

func (s *Stage) readLogs(ctx context.Context, namespace, pod, container string) (string, error) {
	b, err := s.client.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("logs of pod %s/%s: %w", namespace, pod, err)
	}
	return string(b), nil
}

// events lists the Job's and its pod's events, oldest first, as "Reason: message" lines.
func (s *Stage) events(ctx context.Context, job string, pod *corev1.Pod) []string {
	names := []string{job}
	if pod != nil {
		names = append(names, pod.Name)
	}
	var evs []corev1.Event
	for _, n := range names {
		list, err := s.client.CoreV1().Events(s.opts.Namespace).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", n).String()})
		if err != nil {
			return []string{fmt.Sprintf("(events unavailable: %v)", err)}
		}
		evs = append(evs, list.Items...)
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].LastTimestamp.Before(&evs[j].LastTimestamp) })
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s %s/%s %s: %s", e.Type, strings.ToLower(e.InvolvedObject.Kind), e.InvolvedObject.Name, e.Reason, e.Message))
	}
	return out
}

// Delete implements stage.Stage: it removes the verify Jobs, ConfigMap, ServiceAccount binding and role.
func (s *Stage) Delete(ctx context.Context) ([]stage.Change, error) {
	var changes []stage.Change
	sel := labels.SelectorFromSet(s.labels()).String()
	jobs, err := s.client.BatchV1().Jobs(s.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("verify: list jobs in %s: %w", s.opts.Namespace, err)
	}
	for _, j := range jobs.Items {
		err := s.client.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
		if err != nil && !apierrors.IsNotFound(err) {
			return changes, fmt.Errorf("verify: delete job %s/%s: %w", j.Namespace, j.Name, err)
		}
		changes = append(changes, stage.Change{Action: stage.Delete, Kind: "job", Name: j.Namespace + "/" + j.Name})
	}
	// Pods go with their Job through the garbage collector; delete them here too so none outlives the
	// ServiceAccount, also where no garbage collector runs.
	if err := s.client.CoreV1().Pods(s.opts.Namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel}); err != nil && !apierrors.IsNotFound(err) {
		return changes, fmt.Errorf("verify: delete pods of verify jobs in %s: %w", s.opts.Namespace, err)
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
