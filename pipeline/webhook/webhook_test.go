package webhook

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

func newStage(t *testing.T, c kubernetes.Interface, mod func(*Options)) *Stage {
	t.Helper()
	o := Options{ClusterName: "test", Region: "us-east-1"}
	if mod != nil {
		mod(&o)
	}
	s, err := New(c, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func count(changes []stage.Change, a stage.Action) int {
	n := 0
	for _, c := range changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	cases := map[string]Options{
		"no cluster name":  {Region: "us-east-1"},
		"bad region":       {ClusterName: "c", Region: "mars"},
		"bad namespace":    {ClusterName: "c", Region: "us-east-1", Namespace: "Not_A_Name"},
		"image with space": {ClusterName: "c", Region: "us-east-1", Image: "a b"},
		"audience list":    {ClusterName: "c", Region: "us-east-1", Audience: "a,b"},
		"short tokens":     {ClusterName: "c", Region: "us-east-1", TokenExpiration: time.Minute},
		"pull secret name": {ClusterName: "c", Region: "us-east-1", ImagePullSecrets: []string{"Mirror_Creds"}},
	}
	for name, o := range cases {
		if _, err := New(nil, o, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestStageAgainstAPIServer(t *testing.T) {
	srv := kubeapiserver.Start(t, kubeapiserver.Options{})
	ctx := t.Context()
	c := srv.Client
	st := newStage(t, c, nil)
	const objects = 10

	plan, err := st.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != objects || count(plan, stage.Create) != objects {
		t.Fatalf("plan on an empty cluster = %+v, want %d creates", plan, objects)
	}

	changes, err := st.Apply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if count(changes, stage.Create) != objects {
		t.Fatalf("first apply = %+v, want %d creates", changes, objects)
	}

	t.Run("objects as applied", func(t *testing.T) {
		ns := config.WebhookNamespace
		mwc, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "irsa-"+config.WebhookName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if mwc.Labels[config.ManagedByTagKey] != config.ManagedByValue || mwc.Labels[config.ClusterLabel] != "test" {
			t.Errorf("labels = %v", mwc.Labels)
		}
		w := mwc.Webhooks[0]
		if *w.FailurePolicy != admissionregistrationv1.Ignore || !slices.Equal(w.AdmissionReviewVersions, []string{"v1beta1"}) ||
			*w.ClientConfig.Service.Path != "/mutate" || w.ClientConfig.Service.Namespace != ns {
			t.Errorf("webhook = %+v", w)
		}
		if ops := w.Rules[0].Operations; len(ops) != 1 || ops[0] != admissionregistrationv1.Create || w.Rules[0].Resources[0] != "pods" {
			t.Errorf("rules = %+v", w.Rules)
		}
		if sel := w.NamespaceSelector.MatchExpressions; len(sel) != 1 || sel[0].Values[0] != ns || sel[0].Operator != metav1.LabelSelectorOpNotIn {
			t.Errorf("namespace selector = %+v, want %s excluded", sel, ns)
		}
		tlsSecret, err := c.CoreV1().Secrets(ns).Get(ctx, config.WebhookName+"-tls", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := verifies(t, tlsSecret.Data["tls.crt"], w.ClientConfig.CABundle, time.Now()); err != nil {
			t.Errorf("serving certificate not trusted by caBundle: %v", err)
		}

		d, err := c.AppsV1().Deployments(ns).Get(ctx, config.WebhookName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *d.Spec.Replicas != 2 {
			t.Errorf("replicas = %d", *d.Spec.Replicas)
		}
		pod := d.Spec.Template.Spec
		ctr := pod.Containers[0]
		if ctr.Image != config.DefaultWebhookImage || !*pod.SecurityContext.RunAsNonRoot || !*ctr.SecurityContext.ReadOnlyRootFilesystem {
			t.Errorf("container = %+v", ctr)
		}
		if ctr.Resources.Requests.Cpu().IsZero() || ctr.Resources.Requests.Memory().IsZero() {
			t.Errorf("no resource requests: %+v", ctr.Resources)
		}
		for _, flag := range []string{"--in-cluster=false", "--token-audience=" + config.DefaultAudience, "--aws-default-region=us-east-1",
			"--sts-regional-endpoint=true", "--annotation-prefix=eks.amazonaws.com", "--tls-cert=/etc/webhook/certs/tls.crt"} {
			if !slices.Contains(ctr.Command, flag) {
				t.Errorf("command %v lacks %s", ctr.Command, flag)
			}
		}
		if _, err := c.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, config.WebhookName, metav1.GetOptions{}); err != nil {
			t.Error(err)
		}
		cr, err := c.RbacV1().ClusterRoles().Get(ctx, "irsa:"+config.WebhookName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get", "list", "watch"}}}
		if len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].Verbs, want[0].Verbs) || !slices.Equal(cr.Rules[0].Resources, want[0].Resources) {
			t.Errorf("cluster role rules = %+v, want %+v", cr.Rules, want)
		}
	})

	t.Run("second apply and plan change nothing", func(t *testing.T) {
		changes, err := st.Apply(ctx)
		if err != nil || len(changes) != 0 {
			t.Errorf("second apply = %+v, %v; want no changes", changes, err)
		}
		plan, err := st.Plan(ctx)
		if err != nil || len(plan) != 0 {
			t.Errorf("plan after apply = %+v, %v; want no changes", plan, err)
		}
	})

	t.Run("a new image is one deployment update", func(t *testing.T) {
		st2 := newStage(t, c, func(o *Options) { o.Image = "example.com/webhook:v2" })
		plan, err := st2.Plan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(plan) != 1 || plan[0].Kind != "deployment" || plan[0].Action != stage.Update || !strings.Contains(plan[0].Detail, "spec.template.spec.containers") {
			t.Fatalf("plan = %+v", plan)
		}
		d, _ := c.AppsV1().Deployments(config.WebhookNamespace).Get(ctx, config.WebhookName, metav1.GetOptions{})
		if d.Spec.Template.Spec.Containers[0].Image != config.DefaultWebhookImage {
			t.Fatal("plan changed the deployment")
		}
		changes, err := st2.Apply(ctx)
		if err != nil || len(changes) != 1 {
			t.Fatalf("apply = %+v, %v", changes, err)
		}
		if changes, _ := st2.Apply(ctx); len(changes) != 0 {
			t.Errorf("re-apply = %+v", changes)
		}
	})

	t.Run("pull secrets of a mirror are one deployment update", func(t *testing.T) {
		st3 := newStage(t, c, func(o *Options) {
			o.Image = "example.com/webhook:v2"
			o.ImagePullSecrets = []string{"mirror-creds", "mirror-creds-2"}
		})
		plan, err := st3.Plan(ctx)
		if err != nil || len(plan) != 1 || plan[0].Kind != "deployment" || plan[0].Action != stage.Update {
			t.Fatalf("plan = %+v, %v; want one deployment update", plan, err)
		}
		if changes, err := st3.Apply(ctx); err != nil || len(changes) != 1 {
			t.Fatalf("apply = %+v, %v", changes, err)
		}
		d, err := c.AppsV1().Deployments(config.WebhookNamespace).Get(ctx, config.WebhookName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := []corev1.LocalObjectReference{{Name: "mirror-creds"}, {Name: "mirror-creds-2"}}
		if got := d.Spec.Template.Spec.ImagePullSecrets; !slices.Equal(got, want) {
			t.Errorf("imagePullSecrets = %+v, want %+v", got, want)
		}
		if changes, _ := st3.Apply(ctx); len(changes) != 0 {
			t.Errorf("re-apply = %+v", changes)
		}
		// Back to the previous options: the pull secrets go again.
		st2 := newStage(t, c, func(o *Options) { o.Image = "example.com/webhook:v2" })
		if changes, err := st2.Apply(ctx); err != nil || len(changes) != 1 {
			t.Fatalf("apply without pull secrets = %+v, %v", changes, err)
		}
		d, _ = c.AppsV1().Deployments(config.WebhookNamespace).Get(ctx, config.WebhookName, metav1.GetOptions{})
		if got := d.Spec.Template.Spec.ImagePullSecrets; len(got) != 0 {
			t.Errorf("imagePullSecrets after removing them = %+v", got)
		}
	})

	t.Run("renewal under 30 days updates only the serving secret", func(t *testing.T) {
		before, _ := c.CoreV1().Secrets(config.WebhookNamespace).Get(ctx, config.WebhookName+"-tls", metav1.GetOptions{})
		leaf, _ := parseCert(before.Data["tls.crt"])
		later := leaf.NotAfter.Add(-20 * 24 * time.Hour)
		st3 := newStage(t, c, func(o *Options) { o.Image = "example.com/webhook:v2"; o.Now = func() time.Time { return later } })
		changes, err := st3.Apply(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 1 || changes[0].Name != config.WebhookNamespace+"/"+config.WebhookName+"-tls" || !strings.HasPrefix(changes[0].Detail, "renew serving certificate") {
			t.Fatalf("changes = %+v", changes)
		}
		after, _ := c.CoreV1().Secrets(config.WebhookNamespace).Get(ctx, config.WebhookName+"-tls", metav1.GetOptions{})
		if bytes.Equal(after.Data["tls.crt"], before.Data["tls.crt"]) {
			t.Error("serving certificate not renewed")
		}
	})

	t.Run("a foreign object stops apply before any write", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}}
		if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pid-ca", Namespace: "other"}}
		if _, err := c.CoreV1().Secrets("other").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		st4 := newStage(t, c, func(o *Options) { o.Namespace, o.Name = "other", "pid" })
		_, err := st4.Apply(ctx)
		if err == nil || !strings.Contains(err.Error(), "not managed by irsa") {
			t.Fatalf("err = %v, want not managed by irsa", err)
		}
		if _, err := c.CoreV1().ServiceAccounts("other").Get(ctx, "pid", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("service account written despite the error: %v", err)
		}
	})

	t.Run("a kind the apiserver does not serve is named in the error", func(t *testing.T) {
		o := object{APIVersion: "example.com/v1", Kind: "Widget", Namespace: "default", Name: "w", JSON: []byte(`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","namespace":"default"}}`)}
		_, err := st.objects.apply(ctx, o, true)
		if err == nil || !strings.Contains(err.Error(), "kind example.com/v1/Widget is not served") {
			t.Errorf("apply of an unknown kind: %v", err)
		}
	})

	t.Run("RBAC forbidden", func(t *testing.T) {
		st5 := newStage(t, srv.UserClient(t, "nobody"), nil)
		_, err := st5.Apply(ctx)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "secret") {
			t.Errorf("err = %v, want forbidden naming the secret", err)
		}
	})

	t.Run("delete removes irsa's objects", func(t *testing.T) {
		changes, err := st.Delete(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if count(changes, stage.Delete) != objects {
			t.Fatalf("delete = %+v, want %d deletes", changes, objects)
		}
		if changes[0].Kind != "mutatingwebhookconfiguration" {
			t.Errorf("first deletion is %s, want the webhook registration", changes[0].Kind)
		}
		if _, err := c.RbacV1().ClusterRoles().Get(ctx, "irsa:"+config.WebhookName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("cluster role still there: %v", err)
		}
		if changes, err := st.Delete(ctx); err != nil || len(changes) != 0 {
			t.Errorf("second delete = %+v, %v", changes, err)
		}
		// The foreign namespace of the previous case is left alone.
		if _, err := c.CoreV1().Namespaces().Get(ctx, "other", metav1.GetOptions{}); err != nil {
			t.Error(err)
		}
	})
}

// TestRenderedLookupGracePeriod pins the flags that close the ServiceAccount race: the grace period is set and the
// apiserver's own timeout for the webhook is longer, or the apiserver would fail the pod open before the webhook
// stops waiting.
func TestRenderedLookupGracePeriod(t *testing.T) {
	t.Parallel()
	st := newStage(t, nil, nil)
	objs, err := st.render(TLSMaterial{})
	if err != nil {
		t.Fatal(err)
	}
	var deployment appsv1.Deployment
	var registration admissionregistrationv1.MutatingWebhookConfiguration
	for _, o := range objs {
		switch o.Kind {
		case "Deployment":
			if err := json.Unmarshal(o.JSON, &deployment); err != nil {
				t.Fatal(err)
			}
		case "MutatingWebhookConfiguration":
			if err := json.Unmarshal(o.JSON, &registration); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := deployment.Spec.Template.Spec.Containers[0].Command
	for _, want := range []string{"--service-account-lookup-grace-period=2s", "--tls-min-version=1.2"} {
		if !slices.Contains(cmd, want) {
			t.Errorf("webhook command %v lacks %s", cmd, want)
		}
	}
	timeout := time.Duration(*registration.Webhooks[0].TimeoutSeconds) * time.Second
	if LookupGracePeriod*2 > timeout {
		t.Errorf("grace period %s is not well below the admission timeout %s", LookupGracePeriod, timeout)
	}
}
