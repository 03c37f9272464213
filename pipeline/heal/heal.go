// Package heal finds the running pods of ServiceAccounts irsa bound that run without the web identity the pod
// identity webhook injects, and restarts their owners the way `kubectl rollout restart` does.
//
// The webhook fails open: a pod admitted while the webhook was unreachable, before it had seen its ServiceAccount,
// or before the ServiceAccount was annotated, runs without AWS credentials and keeps running that way. A dry run
// (what `irsa doctor` does) cannot see those pods; Find looks at the pods themselves.
package heal

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// Owner kinds Find reports. Deployment, StatefulSet and DaemonSet are restarted; the others are reported only.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
	KindJob         = "Job"
	KindReplicaSet  = "ReplicaSet"
	// KindPod is a bare pod: nothing recreates it, so heal never deletes it.
	KindPod = "Pod"
)

// RestartedAtAnnotation is what `kubectl rollout restart` sets on the pod template: a new value makes the
// controller replace every pod, which the webhook then mutates.
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// skipContainersAnnotation lists, on a pod, containers the webhook leaves alone (upstream's
// eks.amazonaws.com/skip-containers).
const skipContainersAnnotation = config.AnnotationPrefix + "/skip-containers"

// Owner is the object that recreates a pod: the controller at the top of its ownerReferences (a Deployment rather
// than its ReplicaSet), or the pod itself for a bare pod.
type Owner struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (o Owner) String() string { return o.Kind + " " + o.Namespace + "/" + o.Name }

// Restartable says whether Restart restarts the owner (what `kubectl rollout restart` supports).
func (o Owner) Restartable() bool {
	return o.Kind == KindDeployment || o.Kind == KindStatefulSet || o.Kind == KindDaemonSet
}

// Finding is a running pod of a bound ServiceAccount that lacks part of the web identity.
type Finding struct {
	Pod            string   `json:"pod"`
	ServiceAccount string   `json:"serviceAccount"`
	RoleARN        string   `json:"roleARN"`
	Missing        []string `json:"missing"`
	Owner          Owner    `json:"owner"`
}

// Advice says in one sentence how the pod gets its credentials.
func (f Finding) Advice() string {
	switch {
	case f.Owner.Restartable():
		return fmt.Sprintf("run `irsa heal`: it restarts %s like `kubectl rollout restart`", f.Owner)
	case f.Owner.Kind == KindPod:
		return "bare pod: nothing recreates it, so irsa leaves it alone: delete and create it again (kubectl replace --force -f)"
	case f.Owner.Kind == KindJob:
		return fmt.Sprintf("delete pod %s: %s starts a new one, which gets the credentials (a Job cannot be restarted in place)", f.Pod, f.Owner)
	default:
		return fmt.Sprintf("restart %s with the tool that manages it (irsa restarts Deployments, StatefulSets and DaemonSets only)", f.Owner)
	}
}

// BoundServiceAccounts lists the ServiceAccounts irsa bound: those carrying the annotation irsa records its
// annotations in (config.AnnotatedByIrsa) or irsa's managed-by label, with a role ARN annotation.
func BoundServiceAccounts(ctx context.Context, client kubernetes.Interface) ([]corev1.ServiceAccount, error) {
	list, err := client.CoreV1().ServiceAccounts(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list service accounts: %w", err)
	}
	var bound []corev1.ServiceAccount
	for _, sa := range list.Items {
		_, recorded := sa.Annotations[config.AnnotatedByIrsa]
		ours := recorded || sa.Labels[config.ManagedByTagKey] == config.ManagedByValue
		if ours && sa.Annotations[config.RoleARNAnnotation] != "" {
			bound = append(bound, sa)
		}
	}
	return bound, nil
}

// Find returns, for every ServiceAccount irsa bound, its running pods that lack AWS_ROLE_ARN (or carry another role
// than the ServiceAccount's), AWS_WEB_IDENTITY_TOKEN_FILE or the projected token volume, each with its owner;
// sorted by pod. The second value is how many pods were looked at.
func Find(ctx context.Context, client kubernetes.Interface) ([]Finding, int, error) {
	sas, err := BoundServiceAccounts(ctx, client)
	if err != nil {
		return nil, 0, err
	}
	byNamespace := map[string]map[string]string{}
	for _, sa := range sas {
		if byNamespace[sa.Namespace] == nil {
			byNamespace[sa.Namespace] = map[string]string{}
		}
		byNamespace[sa.Namespace][sa.Name] = sa.Annotations[config.RoleARNAnnotation]
	}
	var findings []Finding
	checked := 0
	owners := newOwnerCache(client)
	for _, ns := range slices.Sorted(maps.Keys(byNamespace)) {
		pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "status.phase=" + string(corev1.PodRunning)})
		if err != nil {
			return nil, 0, fmt.Errorf("list running pods in namespace %s: %w", ns, err)
		}
		for i := range pods.Items {
			pod := &pods.Items[i]
			roleARN, bound := byNamespace[ns][pod.Spec.ServiceAccountName]
			if !bound || pod.DeletionTimestamp != nil {
				continue
			}
			checked++
			missing := Missing(pod, roleARN)
			if len(missing) == 0 {
				continue
			}
			owner, err := owners.owner(ctx, pod)
			if err != nil {
				return nil, 0, err
			}
			findings = append(findings, Finding{Pod: ns + "/" + pod.Name, ServiceAccount: ns + "/" + pod.Spec.ServiceAccountName,
				RoleARN: roleARN, Missing: missing, Owner: owner})
		}
	}
	return findings, checked, nil
}

// Missing lists what the pod lacks of the web identity for roleARN: the two environment variables in every
// container the webhook mutates, and the projected token volume.
func Missing(pod *corev1.Pod, roleARN string) []string {
	skip := map[string]bool{}
	for name := range strings.SplitSeq(pod.Annotations[skipContainersAnnotation], ",") {
		skip[strings.TrimSpace(name)] = true
	}
	var missing []string
	add := func(s string) {
		if !slices.Contains(missing, s) {
			missing = append(missing, s)
		}
	}
	for _, c := range pod.Spec.Containers {
		if skip[c.Name] {
			continue
		}
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		switch arn, ok := env["AWS_ROLE_ARN"]; {
		case !ok:
			add("AWS_ROLE_ARN")
		case arn != roleARN:
			add(fmt.Sprintf("AWS_ROLE_ARN %s (the ServiceAccount now says %s)", arn, roleARN))
		}
		if _, ok := env["AWS_WEB_IDENTITY_TOKEN_FILE"]; !ok {
			add("AWS_WEB_IDENTITY_TOKEN_FILE")
		}
	}
	hasVolume := slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == config.TokenVolume && v.Projected != nil &&
			slices.ContainsFunc(v.Projected.Sources, func(s corev1.VolumeProjection) bool { return s.ServiceAccountToken != nil })
	})
	if !hasVolume {
		add("projected token volume " + config.TokenVolume)
	}
	return missing
}

// ownerCache resolves pods' owners, reading each ReplicaSet once.
type ownerCache struct {
	client      kubernetes.Interface
	replicaSets map[string]Owner
}

func newOwnerCache(client kubernetes.Interface) *ownerCache {
	return &ownerCache{client: client, replicaSets: map[string]Owner{}}
}

func (c *ownerCache) owner(ctx context.Context, pod *corev1.Pod) (Owner, error) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return Owner{Kind: KindPod, Namespace: pod.Namespace, Name: pod.Name}, nil
	}
	if ref.Kind != KindReplicaSet || !strings.HasPrefix(ref.APIVersion, "apps/") {
		return Owner{Kind: ref.Kind, Namespace: pod.Namespace, Name: ref.Name}, nil
	}
	key := pod.Namespace + "/" + ref.Name
	if o, ok := c.replicaSets[key]; ok {
		return o, nil
	}
	o := Owner{Kind: KindReplicaSet, Namespace: pod.Namespace, Name: ref.Name}
	rs, err := c.client.AppsV1().ReplicaSets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return Owner{}, fmt.Errorf("get replicaset %s owning pod %s/%s: %w", key, pod.Namespace, pod.Name, err)
	default:
		if dep := metav1.GetControllerOf(rs); dep != nil && dep.Kind == KindDeployment {
			o = Owner{Kind: KindDeployment, Namespace: pod.Namespace, Name: dep.Name}
		}
	}
	c.replicaSets[key] = o
	return o, nil
}

// Result is what Restart did.
type Result struct {
	// Restarted are the owners whose pod template got a new RestartedAtAnnotation.
	Restarted []Owner `json:"restarted"`
	// Untouched are the findings whose owner irsa does not restart (bare pods, Jobs, others), with advice.
	Untouched []Finding `json:"untouched"`
}

// Restart restarts every restartable owner in findings once, as `kubectl rollout restart` does (a strategic merge
// patch of spec.template.metadata.annotations[RestartedAtAnnotation] = now in RFC 3339), and returns the findings
// it left alone. It stops at the first failure, returning what it restarted so far.
func Restart(ctx context.Context, client kubernetes.Interface, findings []Finding, now time.Time) (Result, error) {
	var res Result
	done := map[Owner]bool{}
	patch := fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, RestartedAtAnnotation, now.UTC().Format(time.RFC3339))
	opts := metav1.PatchOptions{FieldManager: config.FieldManager}
	for _, f := range findings {
		o := f.Owner
		if !o.Restartable() {
			res.Untouched = append(res.Untouched, f)
			continue
		}
		if done[o] {
			continue
		}
		var err error
		switch o.Kind {
		case KindDeployment:
			_, err = client.AppsV1().Deployments(o.Namespace).Patch(ctx, o.Name, types.StrategicMergePatchType, patch, opts)
		case KindStatefulSet:
			_, err = client.AppsV1().StatefulSets(o.Namespace).Patch(ctx, o.Name, types.StrategicMergePatchType, patch, opts)
		case KindDaemonSet:
			_, err = client.AppsV1().DaemonSets(o.Namespace).Patch(ctx, o.Name, types.StrategicMergePatchType, patch, opts)
		}
		if err != nil {
			return res, fmt.Errorf("restart %s: %w", o, err)
		}
		done[o] = true
		res.Restarted = append(res.Restarted, o)
	}
	return res, nil
}
