// Package bindings binds Kubernetes ServiceAccounts to IAM roles. This file is the cluster half: the
// ServiceAccount, created when missing and annotated for amazon-eks-pod-identity-webhook. irsa records on the
// ServiceAccount which annotations it set (config.AnnotatedByIrsa), so unbinding removes exactly those and leaves
// annotations, labels and ServiceAccounts that others made.
package bindings

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// Binding is one ServiceAccount bound to one IAM role.
type Binding struct {
	Namespace      string
	ServiceAccount string
	// RoleARN is the IAM role pods of the ServiceAccount assume (config.RoleARNAnnotation). Required to bind;
	// unbinding needs only the names.
	RoleARN string
	// Audience, when set, overrides the webhook's token audience (config.AudienceAnnotation).
	Audience string
	// STSRegionalEndpoints, when set, is written as config.STSRegionalAnnotation ("true"/"false").
	STSRegionalEndpoints *bool
	// TokenExpiration, when set, is written as config.TokenExpirationAnnotation in seconds (at least 10m).
	TokenExpiration time.Duration
	// ClusterName is the value of config.ClusterLabel on objects irsa creates; optional.
	ClusterName string
	// RequireExisting makes a missing ServiceAccount an error (ErrServiceAccountMissing) instead of creating it with
	// its namespace: `irsa bind` without --create-service-account, so a typo in NAMESPACE/NAME never makes a new one.
	RequireExisting bool
}

// ErrServiceAccountMissing is wrapped by the error about a ServiceAccount that does not exist and was not to be
// created (Binding.RequireExisting).
var ErrServiceAccountMissing = errors.New("service account does not exist")

// CheckServiceAccount returns an error wrapping ErrServiceAccountMissing when b.RequireExisting is set and the
// ServiceAccount does not exist; it only reads, so callers run it before their first write.
func CheckServiceAccount(ctx context.Context, client kubernetes.Interface, b Binding) error {
	if !b.RequireExisting {
		return nil
	}
	_, err := client.CoreV1().ServiceAccounts(b.Namespace).Get(ctx, b.ServiceAccount, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return missing(b)
	case err != nil:
		return fmt.Errorf("get service account %s: %w", b, err)
	}
	return nil
}

func missing(b Binding) error {
	return fmt.Errorf("service account %s: %w: create it first (check the spelling of %s), or let irsa create it with --create-service-account (createServiceAccount: true in irsa.yaml)",
		b, ErrServiceAccountMissing, b)
}

// String is "namespace/name".
func (b Binding) String() string { return b.Namespace + "/" + b.ServiceAccount }

var roleARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$`)

// ValidateNames checks the namespace and ServiceAccount names.
func (b Binding) ValidateNames() error {
	var errs []error
	if msgs := validation.IsDNS1123Label(b.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("binding %s: namespace %q: %s", b, b.Namespace, strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsDNS1123Subdomain(b.ServiceAccount); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("binding %s: service account %q: %s", b, b.ServiceAccount, strings.Join(msgs, "; ")))
	}
	return errors.Join(errs...)
}

// Validate checks every field before anything is written.
func (b Binding) Validate() error {
	errs := []error{b.ValidateNames()}
	if !roleARNPattern.MatchString(b.RoleARN) {
		errs = append(errs, fmt.Errorf("binding %s: role ARN %q: want arn:aws:iam::ACCOUNT:role/NAME", b, b.RoleARN))
	}
	if strings.ContainsAny(b.Audience, " \t\n,") {
		errs = append(errs, fmt.Errorf("binding %s: audience %q must be one value without spaces or commas", b, b.Audience))
	}
	if b.TokenExpiration != 0 && b.TokenExpiration < 10*time.Minute {
		errs = append(errs, fmt.Errorf("binding %s: token expiration %s: want at least 10m", b, b.TokenExpiration))
	}
	if msgs := validation.IsValidLabelValue(b.ClusterName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("binding %s: cluster name %q: %s", b, b.ClusterName, strings.Join(msgs, "; ")))
	}
	return errors.Join(errs...)
}

// annotations are the annotations the binding asks for.
func (b Binding) annotations() map[string]string {
	a := map[string]string{config.RoleARNAnnotation: b.RoleARN}
	if b.Audience != "" {
		a[config.AudienceAnnotation] = b.Audience
	}
	if b.STSRegionalEndpoints != nil {
		a[config.STSRegionalAnnotation] = strconv.FormatBool(*b.STSRegionalEndpoints)
	}
	if b.TokenExpiration != 0 {
		a[config.TokenExpirationAnnotation] = strconv.FormatInt(int64(b.TokenExpiration/time.Second), 10)
	}
	return a
}

func (b Binding) labels() map[string]string {
	l := map[string]string{config.ManagedByTagKey: config.ManagedByValue}
	if b.ClusterName != "" {
		l[config.ClusterLabel] = b.ClusterName
	}
	return l
}

// BindServiceAccount creates the namespace and ServiceAccount when missing (unless b.RequireExisting) and sets the binding's annotations. An
// annotation someone else set to a different value is an error, never overwritten. A second call changes nothing.
func BindServiceAccount(ctx context.Context, client kubernetes.Interface, b Binding) ([]stage.Change, error) {
	return bind(ctx, client, b, false)
}

// PlanBindServiceAccount lists what BindServiceAccount would change, writing nothing (server-side dry-run).
func PlanBindServiceAccount(ctx context.Context, client kubernetes.Interface, b Binding) ([]stage.Change, error) {
	return bind(ctx, client, b, true)
}

func bind(ctx context.Context, client kubernetes.Interface, b Binding, dryRun bool) ([]stage.Change, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	var changes []stage.Change
	sas := client.CoreV1().ServiceAccounts(b.Namespace)
	cur, err := sas.Get(ctx, b.ServiceAccount, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cur = nil
	} else if err != nil {
		return nil, fmt.Errorf("get service account %s: %w", b, err)
	}
	var nsChange *stage.Change
	if cur == nil {
		if b.RequireExisting {
			return nil, missing(b)
		}
		if nsChange, err = ensureNamespace(ctx, client, b, dryRun); err != nil {
			return nil, err
		}
		if nsChange != nil {
			changes = append(changes, *nsChange)
		}
	}

	want := b.annotations()
	ours := map[string]string{}
	created := cur == nil || cur.Labels[config.ManagedByTagKey] == config.ManagedByValue
	if cur == nil {
		maps.Copy(ours, want)
	} else {
		recorded := recordedKeys(cur)
		for k, v := range want {
			have, exists := cur.Annotations[k]
			switch {
			case !exists || slices.Contains(recorded, k):
				ours[k] = v
			case have != v:
				return nil, fmt.Errorf("service account %s: annotation %s=%q was not set by irsa and differs from %q: remove it or bind another service account",
					b, k, have, v)
			}
			// Equal and set by someone else: theirs, left as is and not recorded.
		}
	}
	if len(ours) > 0 {
		ours[config.AnnotatedByIrsa] = strings.Join(slices.Sorted(maps.Keys(ours)), ",")
	}

	ac := corev1ac.ServiceAccount(b.ServiceAccount, b.Namespace).WithAnnotations(ours)
	if created {
		ac.WithLabels(b.labels())
	}
	if cur != nil && alreadyApplied(cur, ours, ac.Labels) {
		// Nothing to change: no request at all, so a no-op apply writes nothing to the cluster.
		return changes, nil
	}
	if nsChange != nil && dryRun {
		// The namespace doesn't exist yet, so a dry-run apply into it would fail.
		return append(changes, stage.Change{Action: stage.Create, Kind: "serviceaccount", Name: b.String()}), nil
	}
	opts := metav1.ApplyOptions{FieldManager: config.FieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	after, err := sas.Apply(ctx, ac, opts)
	if err != nil {
		return changes, fmt.Errorf("apply service account %s: %w", b, err)
	}
	if cur == nil {
		return append(changes, stage.Change{Action: stage.Create, Kind: "serviceaccount", Name: b.String(), Detail: b.RoleARN}), nil
	}
	if diff := mapDiff(cur.Annotations, after.Annotations); len(diff) > 0 {
		changes = append(changes, stage.Change{Action: stage.Update, Kind: "serviceaccount", Name: b.String(), Detail: "annotations " + strings.Join(diff, ", ")})
	}
	return changes, nil
}

// alreadyApplied says whether the ServiceAccount already carries exactly what irsa would apply: every annotation of
// ours with its value, the same record of irsa's annotations (so none is left to remove), and the labels.
func alreadyApplied(cur *corev1.ServiceAccount, ours, labels map[string]string) bool {
	if cur.Annotations[config.AnnotatedByIrsa] != ours[config.AnnotatedByIrsa] {
		return false
	}
	for k, v := range ours {
		if have, ok := cur.Annotations[k]; !ok || have != v {
			return false
		}
	}
	for k, v := range labels {
		if have, ok := cur.Labels[k]; !ok || have != v {
			return false
		}
	}
	return true
}

func ensureNamespace(ctx context.Context, client kubernetes.Interface, b Binding, dryRun bool) (*stage.Change, error) {
	_, err := client.CoreV1().Namespaces().Get(ctx, b.Namespace, metav1.GetOptions{})
	if err == nil {
		return nil, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get namespace %s: %w", b.Namespace, err)
	}
	change := &stage.Change{Action: stage.Create, Kind: "namespace", Name: b.Namespace}
	if dryRun {
		return change, nil
	}
	ac := corev1ac.Namespace(b.Namespace).WithLabels(b.labels())
	if _, err := client.CoreV1().Namespaces().Apply(ctx, ac, metav1.ApplyOptions{FieldManager: config.FieldManager, Force: true}); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", b.Namespace, err)
	}
	return change, nil
}

// UnbindServiceAccount removes the annotations irsa set, deletes the ServiceAccount if irsa created it, and deletes
// the namespace if irsa created it and nothing else is left in it. A missing ServiceAccount is already unbound.
func UnbindServiceAccount(ctx context.Context, client kubernetes.Interface, b Binding) ([]stage.Change, error) {
	if err := b.ValidateNames(); err != nil {
		return nil, err
	}
	var changes []stage.Change
	sas := client.CoreV1().ServiceAccounts(b.Namespace)
	cur, err := sas.Get(ctx, b.ServiceAccount, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("get service account %s: %w", b, err)
	case cur.Labels[config.ManagedByTagKey] == config.ManagedByValue:
		if err := sas.Delete(ctx, b.ServiceAccount, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("delete service account %s: %w", b, err)
		}
		changes = append(changes, stage.Change{Action: stage.Delete, Kind: "serviceaccount", Name: b.String()})
	case cur.Annotations[config.AnnotatedByIrsa] != "":
		// Applying an empty configuration drops every field irsa's field manager owns: exactly the recorded
		// annotations. Fields shared with another manager stay.
		after, err := sas.Apply(ctx, corev1ac.ServiceAccount(b.ServiceAccount, b.Namespace),
			metav1.ApplyOptions{FieldManager: config.FieldManager, Force: true})
		if err != nil {
			return nil, fmt.Errorf("remove irsa's annotations from service account %s: %w", b, err)
		}
		if diff := mapDiff(cur.Annotations, after.Annotations); len(diff) > 0 {
			changes = append(changes, stage.Change{Action: stage.Update, Kind: "serviceaccount", Name: b.String(), Detail: "annotations " + strings.Join(diff, ", ")})
		}
	}

	nsChange, err := deleteNamespaceIfOurs(ctx, client, b.Namespace)
	if err != nil {
		return changes, err
	}
	if nsChange != nil {
		changes = append(changes, *nsChange)
	}
	return changes, nil
}

func deleteNamespaceIfOurs(ctx context.Context, client kubernetes.Interface, name string) (*stage.Change, error) {
	ns, err := client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get namespace %s: %w", name, err)
	}
	if ns.Labels[config.ManagedByTagKey] != config.ManagedByValue || ns.DeletionTimestamp != nil {
		return nil, nil
	}
	sas, err := client.CoreV1().ServiceAccounts(name).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list service accounts in %s: %w", name, err)
	}
	for _, sa := range sas.Items {
		if sa.Name != "default" {
			return nil, nil
		}
	}
	pods, err := client.CoreV1().Pods(name).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("list pods in %s: %w", name, err)
	}
	if len(pods.Items) > 0 {
		return nil, nil
	}
	if err := client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return &stage.Change{Action: stage.Delete, Kind: "namespace", Name: name}, nil
}

// recordedKeys are the annotation keys irsa recorded as its own on sa.
func recordedKeys(sa *corev1.ServiceAccount) []string {
	v := sa.Annotations[config.AnnotatedByIrsa]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// mapDiff names the keys whose values differ, with +/- for added and removed ones.
func mapDiff(before, after map[string]string) []string {
	var out []string
	for k, v := range after {
		if old, ok := before[k]; !ok {
			out = append(out, "+"+k)
		} else if old != v {
			out = append(out, "~"+k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out = append(out, "-"+k)
		}
	}
	slices.Sort(out)
	return out
}
