package bindings

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

const roleARN = "arn:aws:iam::123456789012:role/irsa-app"

func TestValidate(t *testing.T) {
	t.Parallel()
	good := Binding{Namespace: "apps", ServiceAccount: "app", RoleARN: roleARN}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*Binding){
		"bad namespace": func(b *Binding) { b.Namespace = "Apps" },
		"bad name":      func(b *Binding) { b.ServiceAccount = "a b" },
		"no role":       func(b *Binding) { b.RoleARN = "" },
		"policy ARN":    func(b *Binding) { b.RoleARN = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess" },
		"short account": func(b *Binding) { b.RoleARN = "arn:aws:iam::1234:role/x" },
		"audience list": func(b *Binding) { b.Audience = "a,b" },
		"short tokens":  func(b *Binding) { b.TokenExpiration = time.Minute },
		"cluster label": func(b *Binding) { b.ClusterName = "not a label" },
	}
	for name, mod := range cases {
		b := good
		mod(&b)
		if err := b.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func onlyChange(t *testing.T, changes []stage.Change, err error, action stage.Action, kind string) stage.Change {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Action != action || changes[0].Kind != kind {
		t.Fatalf("changes = %+v, want one %s %s", changes, action, kind)
	}
	return changes[0]
}

func TestServiceAccountAgainstAPIServer(t *testing.T) {
	srv := kubeapiserver.Start(t, kubeapiserver.Options{})
	ctx := t.Context()
	c := srv.Client
	get := func(t *testing.T, ns, name string) *corev1.ServiceAccount {
		t.Helper()
		sa, err := c.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sa
	}

	t.Run("bind creates namespace and service account, rebind changes nothing, unbind removes both", func(t *testing.T) {
		b := Binding{Namespace: "fresh", ServiceAccount: "app", RoleARN: roleARN, ClusterName: "test"}
		plan, err := PlanBindServiceAccount(ctx, c, b)
		if err != nil || len(plan) != 2 {
			t.Fatalf("plan = %+v, %v; want namespace and service account creates", plan, err)
		}
		changes, err := BindServiceAccount(ctx, c, b)
		if err != nil || len(changes) != 2 || changes[0].Kind != "namespace" || changes[1].Action != stage.Create {
			t.Fatalf("bind = %+v, %v", changes, err)
		}
		sa := get(t, "fresh", "app")
		if sa.Annotations[config.RoleARNAnnotation] != roleARN || sa.Annotations[config.AnnotatedByIrsa] != config.RoleARNAnnotation {
			t.Errorf("annotations = %v", sa.Annotations)
		}
		if sa.Labels[config.ManagedByTagKey] != config.ManagedByValue || sa.Labels[config.ClusterLabel] != "test" {
			t.Errorf("labels = %v", sa.Labels)
		}
		if changes, err := BindServiceAccount(ctx, c, b); err != nil || len(changes) != 0 {
			t.Errorf("rebind = %+v, %v; want no changes", changes, err)
		}
		if plan, err := PlanBindServiceAccount(ctx, c, b); err != nil || len(plan) != 0 {
			t.Errorf("plan after bind = %+v, %v; want no changes", plan, err)
		}

		changes, err = UnbindServiceAccount(ctx, c, b)
		if err != nil || len(changes) != 2 || changes[0].Kind != "serviceaccount" || changes[1].Kind != "namespace" {
			t.Fatalf("unbind = %+v, %v; want service account and namespace deletes", changes, err)
		}
		if _, err := c.CoreV1().ServiceAccounts("fresh").Get(ctx, "app", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("service account still there: %v", err)
		}
		if changes, err := UnbindServiceAccount(ctx, c, b); err != nil || len(changes) != 0 {
			t.Errorf("second unbind = %+v, %v", changes, err)
		}
	})

	t.Run("optional annotations come and go", func(t *testing.T) {
		b := Binding{Namespace: "default", ServiceAccount: "opts", RoleARN: roleARN}
		if _, err := BindServiceAccount(ctx, c, b); err != nil {
			t.Fatal(err)
		}
		regional := true
		b2 := b
		b2.Audience, b2.STSRegionalEndpoints, b2.TokenExpiration = "example.com", &regional, 2*time.Hour
		changes, err := BindServiceAccount(ctx, c, b2)
		ch := onlyChange(t, changes, err, stage.Update, "serviceaccount")
		if !strings.Contains(ch.Detail, "+"+config.AudienceAnnotation) {
			t.Errorf("detail = %q", ch.Detail)
		}
		sa := get(t, "default", "opts")
		if sa.Annotations[config.TokenExpirationAnnotation] != "7200" || sa.Annotations[config.STSRegionalAnnotation] != "true" || sa.Annotations[config.AudienceAnnotation] != "example.com" {
			t.Errorf("annotations = %v", sa.Annotations)
		}
		changes, err = BindServiceAccount(ctx, c, b)
		onlyChange(t, changes, err, stage.Update, "serviceaccount")
		sa = get(t, "default", "opts")
		if _, ok := sa.Annotations[config.AudienceAnnotation]; ok || sa.Annotations[config.AnnotatedByIrsa] != config.RoleARNAnnotation {
			t.Errorf("annotations after dropping options = %v", sa.Annotations)
		}
		changes, err = UnbindServiceAccount(ctx, c, b)
		onlyChange(t, changes, err, stage.Delete, "serviceaccount")
	})

	t.Run("unbind leaves a pre-existing service account and foreign annotations", func(t *testing.T) {
		pre := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "theirs", Namespace: "default",
			Labels: map[string]string{"team": "a"}, Annotations: map[string]string{"team.example.com/owner": "alice"}}}
		if _, err := c.CoreV1().ServiceAccounts("default").Create(ctx, pre, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		b := Binding{Namespace: "default", ServiceAccount: "theirs", RoleARN: roleARN, ClusterName: "test"}
		changes, err := BindServiceAccount(ctx, c, b)
		onlyChange(t, changes, err, stage.Update, "serviceaccount")
		sa := get(t, "default", "theirs")
		if sa.Labels[config.ManagedByTagKey] != "" {
			t.Errorf("irsa labelled a service account it did not create: %v", sa.Labels)
		}
		if changes, err := BindServiceAccount(ctx, c, b); err != nil || len(changes) != 0 {
			t.Errorf("rebind = %+v, %v", changes, err)
		}
		changes, err = UnbindServiceAccount(ctx, c, b)
		ch := onlyChange(t, changes, err, stage.Update, "serviceaccount")
		if ch.Detail != "annotations -"+config.RoleARNAnnotation+", -"+config.AnnotatedByIrsa {
			t.Errorf("detail = %q", ch.Detail)
		}
		sa = get(t, "default", "theirs")
		if len(sa.Annotations) != 1 || sa.Annotations["team.example.com/owner"] != "alice" || sa.Labels["team"] != "a" {
			t.Errorf("after unbind: annotations %v labels %v", sa.Annotations, sa.Labels)
		}
		if _, err := c.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Error(err)
		}
	})

	t.Run("an annotation set by someone else is never overwritten", func(t *testing.T) {
		other := "arn:aws:iam::123456789012:role/someone-else"
		pre := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: "default",
			Annotations: map[string]string{config.RoleARNAnnotation: other}}}
		if _, err := c.CoreV1().ServiceAccounts("default").Create(ctx, pre, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		b := Binding{Namespace: "default", ServiceAccount: "taken", RoleARN: roleARN}
		_, err := BindServiceAccount(ctx, c, b)
		if err == nil || !strings.Contains(err.Error(), "not set by irsa") {
			t.Fatalf("err = %v", err)
		}
		if got := get(t, "default", "taken").Annotations[config.RoleARNAnnotation]; got != other {
			t.Errorf("role ARN = %q, want %q untouched", got, other)
		}
		// The same value set by someone else stays theirs: unbind leaves it.
		b.RoleARN = other
		if _, err := BindServiceAccount(ctx, c, b); err != nil {
			t.Fatal(err)
		}
		if _, err := UnbindServiceAccount(ctx, c, b); err != nil {
			t.Fatal(err)
		}
		if got := get(t, "default", "taken").Annotations[config.RoleARNAnnotation]; got != other {
			t.Errorf("after unbind: role ARN = %q, want %q kept", got, other)
		}
	})

	t.Run("RBAC forbidden", func(t *testing.T) {
		_, err := BindServiceAccount(ctx, srv.UserClient(t, "nobody"), Binding{Namespace: "default", ServiceAccount: "x", RoleARN: roleARN})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "service account default/x") {
			t.Errorf("err = %v, want forbidden naming the service account", err)
		}
	})

	t.Run("a missing service account that must exist is an error and nothing is created", func(t *testing.T) {
		b := Binding{Namespace: "typo-ns", ServiceAccount: "app", RoleARN: roleARN, RequireExisting: true}
		for name, f := range map[string]func() error{
			"check": func() error { return CheckServiceAccount(ctx, c, b) },
			"plan":  func() error { _, err := PlanBindServiceAccount(ctx, c, b); return err },
			"bind":  func() error { _, err := BindServiceAccount(ctx, c, b); return err },
		} {
			if err := f(); !errors.Is(err, ErrServiceAccountMissing) || !strings.Contains(err.Error(), "typo-ns/app") ||
				!strings.Contains(err.Error(), "--create-service-account") {
				t.Errorf("%s: err = %v, want ErrServiceAccountMissing naming typo-ns/app and the flag", name, err)
			}
		}
		if _, err := c.CoreV1().Namespaces().Get(ctx, "typo-ns", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("namespace typo-ns was created (get: %v)", err)
		}
		// An existing one is bound as before.
		b.Namespace = "default"
		if _, err := c.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := CheckServiceAccount(ctx, c, b); err != nil {
			t.Fatal(err)
		}
		changes, err := BindServiceAccount(ctx, c, b)
		onlyChange(t, changes, err, stage.Update, "serviceaccount")
	})
}
