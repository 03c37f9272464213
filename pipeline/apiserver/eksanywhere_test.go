package apiserver

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
)

var update = flag.Bool("update", false, "rewrite the expected files in testdata/ from the current output")

// eksaCase is testdata/eksanywhere/<case>/case.yaml (see testdata/eksanywhere/README.md).
type eksaCase struct {
	Accept bool `json:"accept"`
	// Issuer "served" makes irsa's issuer the one the apiserver serves already; default a new one.
	Issuer string `json:"issuer"`
	// Error is text Apply's error must contain; empty means Apply must reach the wait for the rollout.
	Error string `json:"error"`
	// Plan is text the plan's change must contain.
	Plan string `json:"plan"`
}

// TestEKSAnywhereGolden runs Plan and Apply on each Cluster object of testdata/eksanywhere in a real kube-apiserver
// with the Cluster CRD, with running pods holding projected tokens (their status set by hand: no kubelet here).
func TestEKSAnywhereGolden(t *testing.T) {
	t.Parallel()
	srv := kubeapiserver.Start(t, patchedOptions)
	ctx := t.Context()
	createEKSACRD(t, srv.Config)
	refuseExtraArgs(t, srv)
	// Two running pods with projected tokens (one of them the webhook's 24h aws-iam-token) and one without.
	if _, err := srv.Client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	day := int64(86400)
	for name, vols := range map[string][]corev1.Volume{
		"with-token": nil, // the apiserver adds kube-api-access-*, a 3607s projected token
		"with-aws-token": {{Name: "aws-iam-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "sts.amazonaws.com", ExpirationSeconds: &day, Path: "token"}}}}}}},
		"no-token": nil,
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: "example.com/c:v1"}}, Volumes: vols}}
		if name == "no-token" {
			pod.Spec.AutomountServiceAccountToken = new(bool)
		}
		created, err := srv.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Status.Phase = corev1.PodRunning
		if _, err := srv.Client.CoreV1().Pods("default").UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The control plane whose machines a change rolls (no Cluster API Machines here: the plan names the nodes).
	for _, n := range []string{"cp-2", "cp-1"} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}}}
		if _, err := srv.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	holders, err := ProjectedTokenHolders(ctx, srv.Client)
	if want := 80*24*time.Hour/100 + time.Minute; err != nil || holders.Pods != 2 || holders.RefreshWithin != want {
		t.Errorf("ProjectedTokenHolders = %+v, %v; want 2 pods, refreshed within %s", holders, err, want)
	}

	clusters := dynamic.NewForConfigOrDie(srv.Config).Resource(eksaClusters).Namespace("default")
	files, err := filepath.Glob("testdata/eksanywhere/*/case.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases in testdata/eksanywhere: %v", err)
	}
	for _, file := range files {
		dir := filepath.Dir(file)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var c eksaCase
			if err := yaml.UnmarshalStrict(readFile(t, file), &c); err != nil {
				t.Fatalf("case.yaml: %v", err)
			}
			var in unstructured.Unstructured
			if err := yaml.Unmarshal(readFile(t, filepath.Join(dir, "input.yaml")), &in.Object); err != nil {
				t.Fatal(err)
			}
			if _, err := clusters.Create(ctx, &in, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			issuer := "https://oidc.example.com/eksa"
			if c.Issuer == "served" {
				issuer = testIssuer
			}
			s := newStage(t, srv.Client, srv.Config, Options{ClusterType: ClusterEKSAnywhere, IssuerURL: issuer, Timeout: time.Second,
				EKSAnywhereCluster: in.GetName(), AcceptIssuerReplacement: c.Accept})
			plan, planErr := s.Plan(ctx)
			if c.Plan != "" && (planErr != nil || len(plan) != 1 || !strings.Contains(plan[0].Detail, c.Plan)) {
				t.Errorf("Plan = %+v, %v; want a change saying %q", plan, planErr, c.Plan)
			}
			if c.Plan != "" && !strings.Contains(plan[0].Detail, "2 running pod(s) hold projected service account tokens from \""+testIssuer+"\"") {
				t.Errorf("plan %q does not count the token holders", plan[0].Detail)
			}
			for _, ch := range plan {
				if !strings.Contains(ch.Disruption, "replaces the 2 control-plane machine(s) cp-1, cp-2 one at a time") {
					t.Errorf("plan change %+v does not name the machines that roll", ch)
				}
			}
			_, err := s.Apply(ctx)
			switch {
			case c.Error != "" && (err == nil || !strings.Contains(err.Error(), c.Error)):
				t.Errorf("Apply: %v; want an error containing %q", err, c.Error)
			case c.Error == "" && c.Issuer != "served" && (err == nil || !strings.Contains(err.Error(), "did not serve")):
				// This apiserver never rolls: after the patch Apply ends waiting for the new issuer.
				t.Errorf("Apply: %v; want the wait for the rollout to time out", err)
			case c.Issuer == "served" && err != nil:
				t.Errorf("Apply: %v", err)
			}
			got, err := clusters.Get(ctx, in.GetName(), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			spec, err := yaml.Marshal(got.Object["spec"])
			if err != nil {
				t.Fatal(err)
			}
			expected := filepath.Join(dir, "expected.yaml")
			if *update {
				if err := os.WriteFile(expected, spec, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := readFile(t, expected); string(spec) != string(want) {
				t.Errorf("spec after Apply differs from %s:\n%s", expected, spec)
			}
			// What EKS Anywhere renders into --service-account-issuer comes from one field only, never two joined.
			_, inPodIAM, _ := unstructured.NestedString(got.Object, "spec", "podIamConfig", "serviceAccountIssuer")
			_, inExtraArgs, _ := unstructured.NestedString(got.Object, "spec", "controlPlaneConfiguration", "apiServerExtraArgs", eksaIssuerArg)
			if inPodIAM && inExtraArgs {
				t.Errorf("both podIamConfig and apiServerExtraArgs set the issuer: EKS Anywhere would join them with a comma")
			}
			if c.Issuer != "served" {
				return
			}
			// Nothing left to do: a second Apply and the Plan change nothing.
			if changes, err := s.Apply(ctx); err != nil || len(changes) != 0 {
				t.Errorf("second Apply = %+v, %v", changes, err)
			}
		})
	}
}

// refuseExtraArgs makes the apiserver refuse apiServerExtraArgs on Clusters labelled irsa-test/extra-args=refused,
// as EKS Anywhere's validation does when its API_SERVER_EXTRA_ARGS_ENABLED feature is off.
func refuseExtraArgs(t *testing.T, srv *kubeapiserver.Server) {
	t.Helper()
	ctx := t.Context()
	deny := admissionregistrationv1.Deny
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "eksa-extra-args"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: new(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"irsa-test/extra-args": "refused"}},
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"anywhere.eks.amazonaws.com"}, APIVersions: []string{"v1alpha1"}, Resources: []string{"clusters"}},
				}}},
			},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "!has(object.spec.controlPlaneConfiguration) || !has(object.spec.controlPlaneConfiguration.apiServerExtraArgs)",
				Message:    "configuring APIServerExtraArgs is not supported. Set env var API_SERVER_EXTRA_ARGS_ENABLED to enable",
			}},
		},
	}
	if _, err := srv.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "eksa-extra-args"},
		Spec:       admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: policy.Name, ValidationActions: []admissionregistrationv1.ValidationAction{deny}},
	}
	if _, err := srv.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The policy takes effect once the apiserver has loaded it: probe with a dry-run create until it refuses.
	clusters := dynamic.NewForConfigOrDie(srv.Config).Resource(eksaClusters).Namespace("default")
	probe := &unstructured.Unstructured{Object: map[string]any{"apiVersion": eksaGroupVersion, "kind": "Cluster",
		"metadata": map[string]any{"name": "probe", "labels": map[string]any{"irsa-test/extra-args": "refused"}},
		"spec":     map[string]any{"controlPlaneConfiguration": map[string]any{"apiServerExtraArgs": map[string]any{"a": "b"}}}}}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := clusters.Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), "API_SERVER_EXTRA_ARGS_ENABLED"), nil
	})
	if err != nil {
		t.Fatalf("the admission policy never took effect: %v", err)
	}
}
