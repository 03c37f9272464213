package apiserver

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/internal/testpki"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/node"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

const testIssuer = "https://irsa-demo-oidc.s3.eu-west-1.amazonaws.com/prod-1"

// kubeadmIssuer is the issuer kubeadm configures; the test apiserver keeps it as a second issuer, the way a
// patched kubeadm cluster does.
const kubeadmIssuer = "https://kubernetes.default.svc.cluster.local"

// patchedOptions are the service account flags Patch writes into kubeadm's manifest (TestPatchedFlagsKeepOldTokensValid
// checks them against the golden file).
var patchedOptions = kubeapiserver.Options{
	Issuer:       testIssuer,
	ExtraIssuers: []string{kubeadmIssuer},
	APIAudiences: []string{kubeadmIssuer, config.DefaultAudience},
}

var shared struct {
	once sync.Once
	srv  *kubeapiserver.Server
	err  error
	dir  string
}

// TestMain stops the shared apiserver, if a test started it.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// patchedServer is a real kube-apiserver that already serves testIssuer first and keeps kubeadm's issuer, as after
// a successful Apply. The tests share it (one apiserver instead of one per test on a 2-core machine); each creates
// objects under its own names.
func patchedServer(t *testing.T) *kubeapiserver.Server {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "irsa-apiserver-test-")
		if shared.err != nil {
			return
		}
		shared.srv, shared.err = kubeapiserver.StartProcess(context.Background(), shared.dir, patchedOptions)
		if shared.err != nil {
			return
		}
		// No controller-manager runs: create the service accounts pods need.
		for _, ns := range []string{"kube-system", "default"} {
			_, err := shared.srv.Client.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				shared.err = err
			}
		}
	})
	if shared.err != nil {
		t.Fatalf("start the shared kube-apiserver: %v", shared.err)
	}
	return shared.srv
}

func newStage(t *testing.T, client kubernetes.Interface, cfg *rest.Config, opts Options) *Stage {
	t.Helper()
	if opts.IssuerURL == "" {
		opts.IssuerURL = testIssuer
	}
	if opts.Audience == "" {
		opts.Audience = config.DefaultAudience
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	if opts.Namespace == "" && opts.ClusterType != ClusterKubeadm {
		// Only kubeadm runs node pods. The others get a namespace of their own (none exists: nothing to find), so
		// their Apply and Delete, which remove a leftover signing key Secret, do not take the one a parallel kubeadm
		// test's node pods are using in kube-system (a real cluster's runs are serialised by its lock).
		opts.Namespace = "no-node-pods"
	}
	opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(client, cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestServedIssuerAndKeys(t *testing.T) {
	t.Parallel()
	srv := patchedServer(t)
	ctx := t.Context()

	issuer, err := ServedIssuer(ctx, srv.Client)
	if err != nil || issuer != testIssuer {
		t.Errorf("ServedIssuer = %q, %v; want %q", issuer, err, testIssuer)
	}

	keys, err := ServedKeys(ctx, srv.Client)
	if err != nil {
		t.Fatalf("ServedKeys: %v", err)
	}
	pubPEM, err := os.ReadFile(srv.ServiceAccountKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pubPEM)
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	wantKid := base64.RawURLEncoding.EncodeToString(sum[:])
	if len(keys.Keys) != 1 || keys.Keys[0].KeyID != wantKid {
		t.Errorf("served keys %+v, want one with kid %q", keys.Keys, wantKid)
	}
	// The kid irsa computes for a key it installs is the one the apiserver serves.
	priv, err := os.ReadFile(srv.ServiceAccountSigningKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, kid, err := node.ParseSigningKey(priv); err != nil || kid != wantKid {
		t.Errorf("ParseSigningKey kid = %q, %v; the apiserver serves %q", kid, err, wantKid)
	}

	// After patching with a provided key, Apply checks that the apiserver verifies with it.
	served := newStage(t, srv.Client, srv.Config, Options{ClusterType: ClusterKubeadm, SigningKey: priv})
	if err := (kubeadm{served}).checkServedKey(ctx); err != nil {
		t.Errorf("checkServedKey with the served key: %v", err)
	}
	other := newStage(t, srv.Client, srv.Config, Options{ClusterType: ClusterKubeadm, SigningKey: testpki.ECKeyPEM(t)})
	if err := (kubeadm{other}).checkServedKey(ctx); err == nil || !strings.Contains(err.Error(), "it serves "+wantKid) {
		t.Errorf("checkServedKey with a key the apiserver does not serve: %v", err)
	}
}

func TestUnreachableAndForbidden(t *testing.T) {
	t.Parallel()
	srv := patchedServer(t)
	ctx := t.Context()

	unreachable, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ServedIssuer(ctx, unreachable); err == nil || !strings.Contains(err.Error(), "is the cluster reachable") {
		t.Errorf("ServedIssuer on an unreachable cluster: %v", err)
	}
	s := newStage(t, unreachable, nil, Options{ClusterType: ClusterKubeadm})
	if _, err := s.Plan(ctx); err == nil || !strings.Contains(err.Error(), "is the cluster reachable") {
		t.Errorf("Plan on an unreachable cluster: %v", err)
	}

	nobodyCfg, err := srv.UserConfig("nobody")
	if err != nil {
		t.Fatal(err)
	}
	nobody := srv.UserClient(t, "nobody")
	for name, run := range map[string]func() error{
		"detect": func() error { _, err := DetectClusterType(ctx, nobody); return err },
		"kubeadm apply": func() error {
			_, err := newStage(t, nobody, nobodyCfg, Options{ClusterType: ClusterKubeadm}).Apply(ctx)
			return err
		},
		"eks-anywhere apply": func() error {
			_, err := newStage(t, nobody, nobodyCfg, Options{ClusterType: ClusterEKSAnywhere}).Apply(ctx)
			return err
		},
	} {
		err := run()
		if err == nil || !strings.Contains(err.Error(), "lacks the permission") {
			t.Errorf("%s as a user without permissions: %v, want a forbidden error that says so", name, err)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	srv := &rest.Config{Host: "https://127.0.0.1:1"}
	client, err := kubernetes.NewForConfig(srv)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"unknown cluster type", Options{IssuerURL: testIssuer, Audience: "sts.amazonaws.com", ClusterType: "openshift"}, `cluster type "openshift": want one of kubeadm, kind, eks-anywhere, external`},
		{"http issuer", Options{IssuerURL: "http://x", Audience: "sts.amazonaws.com"}, "must use https"},
		{"bad key", Options{IssuerURL: testIssuer, Audience: "sts.amazonaws.com", SigningKey: []byte("not a key")}, "signing key: no PEM private key block"},
		{"key on kind", Options{IssuerURL: testIssuer, Audience: "sts.amazonaws.com", ClusterType: ClusterKind, SigningKey: testpki.ECKeyPEM(t)}, "only the kubeadm cluster type"},
		{"negative timeout", Options{IssuerURL: testIssuer, Audience: "sts.amazonaws.com", Timeout: -time.Second}, "must not be negative"},
		{"pull secret name", Options{IssuerURL: testIssuer, Audience: "sts.amazonaws.com", ImagePullSecrets: []string{"Mirror_Creds"}}, `image pull secret "Mirror_Creds"`},
	}
	for _, tt := range tests {
		if _, err := New(client, srv, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New error = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestDetectClusterType(t *testing.T) {
	t.Parallel()
	srv := kubeapiserver.Start(t, kubeapiserver.Options{})
	ctx := t.Context()
	detect := func(want string) {
		t.Helper()
		got, err := DetectClusterType(ctx, srv.Client)
		if err != nil || got != want {
			t.Errorf("DetectClusterType = %q, %v; want %q", got, err, want)
		}
	}
	// Each step adds what the next type is recognised by; the later ones take precedence.
	detect(ClusterExternal)
	if _, err := srv.Client.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kubeadm-config"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	detect(ClusterKubeadm)
	createEKSACRD(t, srv.Config)
	detect(ClusterEKSAnywhere)
	createNode(t, srv.Client, "kind-control-plane", "kind://docker/kind/kind-control-plane")
	detect(ClusterKind)
}

func TestVerifyOnlyClusterTypes(t *testing.T) {
	t.Parallel()
	srv := patchedServer(t)
	ctx := t.Context()
	for _, typ := range []string{ClusterKind, ClusterExternal} {
		s := newStage(t, srv.Client, srv.Config, Options{ClusterType: typ})
		for name, run := range map[string]func(context.Context) ([]stage.Change, error){"plan": s.Plan, "apply": s.Apply, "delete": s.Delete} {
			if changes, err := run(ctx); err != nil || len(changes) != 0 {
				t.Errorf("%s %s with the issuer served: %v, %v; want nothing to do", typ, name, changes, err)
			}
		}
	}
	wrong := "https://oidc.example.com/other"
	kind := newStage(t, srv.Client, srv.Config, Options{ClusterType: ClusterKind, IssuerURL: wrong})
	if _, err := kind.Apply(ctx); err == nil || !strings.Contains(err.Error(), "irsa kind-config") || !strings.Contains(err.Error(), testIssuer) {
		t.Errorf("kind apply with another issuer served: %v; want an error naming the served issuer and kind-config", err)
	}
	external := newStage(t, srv.Client, srv.Config, Options{ClusterType: ClusterExternal, IssuerURL: wrong})
	if _, err := external.Plan(ctx); err == nil || !strings.Contains(err.Error(), "--service-account-issuer="+wrong) {
		t.Errorf("external plan with another issuer served: %v; want the flags to set", err)
	}
}

// TestKubeadm runs the kubeadm stage against a real apiserver with Node objects and mirror pods made by hand: no
// kubelet runs here, so node pods never start (the host-cluster e2e runs them for real).
func TestKubeadm(t *testing.T) {
	t.Parallel()
	srv := patchedServer(t)
	ctx := t.Context()
	s := newStage(t, srv.Client, srv.Config, Options{ClusterType: ClusterKubeadm, Timeout: 30 * time.Second})

	if _, err := s.Plan(ctx); err == nil || !strings.Contains(err.Error(), "no node is labelled "+ControlPlaneLabel) {
		t.Errorf("Plan without control-plane nodes: %v", err)
	}

	original := readFile(t, "manifest/testdata/inputs/kubeadm.yaml")
	patched, _, err := manifest.Patch(original, manifest.PatchOptions{IssuerURL: testIssuer, Audience: config.DefaultAudience})
	if err != nil {
		t.Fatal(err)
	}
	createNode(t, srv.Client, "cp-1", "")
	createNode(t, srv.Client, "cp-2", "")
	createMirrorPod(t, srv.Client, "cp-1", patched)
	createMirrorPod(t, srv.Client, "cp-2", patched)

	// Every node is patched and the apiserver serves the issuer: nothing to do, and no pod is created.
	for name, run := range map[string]func(context.Context) ([]stage.Change, error){"plan": s.Plan, "apply": s.Apply} {
		if changes, err := run(ctx); err != nil || len(changes) != 0 {
			t.Errorf("%s on patched nodes = %v, %v; want no changes", name, changes, err)
		}
	}
	assertNoNodePods(t, srv.Client)

	// cp-2 still runs the original manifest.
	if err := srv.Client.CoreV1().Pods("kube-system").Delete(ctx, "kube-apiserver-cp-2", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	waitPodGone(t, srv.Client, "kube-apiserver-cp-2")
	createMirrorPod(t, srv.Client, "cp-2", original)
	changes, err := s.Plan(ctx)
	if err != nil || len(changes) != 1 || changes[0].Name != "cp-2" || changes[0].Action != stage.Update || !strings.Contains(changes[0].Detail, kubeadmIssuer) {
		t.Errorf("Plan with cp-2 unpatched = %+v, %v; want one update of cp-2", changes, err)
	}

	// What the two passes see: cp-1 accepts irsa and issues for it (not demoted); cp-2 neither.
	states, err := kubeadm{s}.nodesToPatch(ctx)
	if err != nil || len(states) != 2 {
		t.Fatalf("nodesToPatch = %+v, %v", states, err)
	}
	if st := states[0]; !st.upToDate || !st.accepts || st.demoted || !st.patched {
		t.Errorf("cp-1 (patched): %+v", st)
	}
	if st := states[1]; st.upToDate || st.accepts || !st.demoted || st.patched {
		t.Errorf("cp-2 (original): %+v", st)
	}

	// With a signing key both nodes need the node pod. Apply creates it on cp-1 first (accepted by the real
	// apiserver's validation); it never runs here: the stage gives up at its deadline, says what it saw, deletes its
	// pod (gracefully: it stays Terminating without a kubelet) and the key Secret.
	withKey := newStage(t, srv.Client, srv.Config, Options{ClusterType: ClusterKubeadm, Timeout: 5 * time.Second, SigningKey: testpki.ECKeyPEM(t), ClusterName: "c1"})
	_, err = withKey.Apply(ctx)
	if err == nil || !strings.Contains(err.Error(), "did not finish within 5s") || !strings.Contains(err.Error(), "on cp-1") || !strings.Contains(err.Error(), "phase Pending") {
		t.Errorf("Apply without a kubelet: %v; want a timeout naming the node and the pod's phase", err)
	}
	assertNoNodePods(t, srv.Client)
	if _, err := srv.Client.CoreV1().Secrets("kube-system").Get(ctx, keySecretName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("signing key secret left behind: %v", err)
	}
}

// The node pod as the real apiserver accepts it (server-side dry run), with the fields the design relies on.
func TestNodePodSpec(t *testing.T) {
	t.Parallel()
	srv := patchedServer(t)
	s := newStage(t, srv.Client, srv.Config, Options{ClusterType: ClusterKubeadm, Image: "irsa:test", ClusterName: "c1", ImagePullSecrets: []string{"mirror-creds"}})
	pod := kubeadm{s}.nodePod(node.PatchCommand, "cp-1.example.com", &keySecret{namespace: "kube-system", name: keySecretName}, 3*time.Minute)
	got, err := srv.Client.CoreV1().Pods("kube-system").Create(t.Context(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("the apiserver rejects the node pod: %v", err)
	}
	c := got.Spec.Containers[0]
	wantCmd := BinaryPath + " node patch-apiserver --verify-timeout=2m30s --issuer-url=" + testIssuer + " --audience=sts.amazonaws.com --signing-key-file=/var/run/irsa/signing-key/sa.key"
	checks := map[string]bool{
		"name":            got.Name == "irsa-patch-apiserver-cp-1-example-com",
		"pinned to node":  got.Spec.NodeName == "cp-1.example.com",
		"tolerates all":   len(got.Spec.Tolerations) > 0 && got.Spec.Tolerations[0].Operator == corev1.TolerationOpExists,
		"host network":    got.Spec.HostNetwork,
		"never restarts":  got.Spec.RestartPolicy == corev1.RestartPolicyNever,
		"image":           c.Image == "irsa:test" && c.ImagePullPolicy == corev1.PullIfNotPresent,
		"command":         strings.Join(c.Command, " ") == wantCmd,
		"root":            *c.SecurityContext.RunAsUser == 0,
		"no capabilities": len(c.SecurityContext.Capabilities.Drop) == 1,
		"/etc/kubernetes": got.Spec.Volumes[0].HostPath.Path == "/etc/kubernetes" && c.VolumeMounts[0].MountPath == "/etc/kubernetes",
		"labels":          got.Labels[config.ManagedByTagKey] == config.ManagedByValue && got.Labels[config.ClusterLabel] == "c1",
		"pull secrets":    len(got.Spec.ImagePullSecrets) == 1 && got.Spec.ImagePullSecrets[0].Name == "mirror-creds",
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("node pod: %s is wrong: command %q, spec:\n%+v", what, c.Command, got.Spec)
		}
	}
}

func TestEKSAnywhere(t *testing.T) {
	t.Parallel()
	srv := patchedServer(t)
	ctx := t.Context()
	s := newStage(t, srv.Client, srv.Config, Options{ClusterType: ClusterEKSAnywhere, IssuerURL: "https://oidc.example.com/eksa", Timeout: 5 * time.Second})

	// Without the EKS Anywhere API the error carries the patch to apply by hand.
	_, err := s.Apply(ctx)
	if err == nil || !strings.Contains(err.Error(), `kubectl patch clusters.anywhere.eks.amazonaws.com CLUSTER_NAME --type merge -p '{"spec":{"podIamConfig":{"serviceAccountIssuer":"https://oidc.example.com/eksa"}}}'`) {
		t.Errorf("Apply without the Cluster API: %v", err)
	}

	createEKSACRD(t, srv.Config)
	dyn := dynamic.NewForConfigOrDie(srv.Config).Resource(eksaClusters).Namespace("default")
	cluster := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": eksaGroupVersion, "kind": "Cluster",
		"metadata": map[string]any{"name": "mgmt"},
		"spec":     map[string]any{"kubernetesVersion": "1.33"},
	}}
	if _, err := dyn.Create(ctx, cluster, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	changes, err := s.Plan(ctx)
	if err != nil || len(changes) != 1 || changes[0].Name != "default/mgmt" {
		t.Errorf("Plan = %+v, %v; want an update of default/mgmt", changes, err)
	}
	// Replacing the served issuer needs the acknowledgement: without it nothing is written.
	_, err = s.Apply(ctx)
	if err == nil || !strings.Contains(err.Error(), "--accept-issuer-replacement") {
		t.Errorf("Apply without --accept-issuer-replacement: %v", err)
	}
	if got, _ := dyn.Get(ctx, "mgmt", metav1.GetOptions{}); got != nil {
		if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, "spec", "podIamConfig"); found {
			t.Errorf("podIamConfig set although Apply refused: %v", got.Object["spec"])
		}
	}
	s = newStage(t, srv.Client, srv.Config, Options{ClusterType: ClusterEKSAnywhere, IssuerURL: "https://oidc.example.com/eksa", Timeout: 5 * time.Second, AcceptIssuerReplacement: true})
	// Apply sets the field; this apiserver never changes its issuer, so the wait ends with what it observed.
	_, err = s.Apply(ctx)
	if err == nil || !strings.Contains(err.Error(), `last observed: issuer "`+testIssuer+`"`) {
		t.Errorf("Apply: %v; want a timeout showing the served issuer", err)
	}
	got, err := dyn.Get(ctx, "mgmt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedString(got.Object, "spec", "podIamConfig", "serviceAccountIssuer"); v != "https://oidc.example.com/eksa" {
		t.Errorf("spec.podIamConfig.serviceAccountIssuer = %q after Apply", v)
	}
	if v, _, _ := unstructured.NestedString(got.Object, "spec", "kubernetesVersion"); v != "1.33" {
		t.Errorf("Apply changed other fields: kubernetesVersion = %q", v)
	}
	// Delete removes irsa's value; the served issuer already differs from it.
	if changes, err := s.Delete(ctx); err != nil || len(changes) != 1 {
		t.Errorf("Delete = %+v, %v", changes, err)
	}
	got, _ = dyn.Get(ctx, "mgmt", metav1.GetOptions{})
	if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, "spec", "podIamConfig"); found {
		t.Errorf("podIamConfig still set after Delete: %v", got.Object["spec"])
	}
	if changes, err := s.Delete(ctx); err != nil || len(changes) != 0 {
		t.Errorf("second Delete = %+v, %v; want nothing to do", changes, err)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func createNode(t *testing.T, client kubernetes.Interface, name, providerID string) {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{ProviderID: providerID}}
	if providerID == "" {
		node.Labels = map[string]string{ControlPlaneLabel: ""}
	}
	if _, err := client.CoreV1().Nodes().Create(t.Context(), node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// createMirrorPod stands in for the kubelet's mirror pod of the node's static kube-apiserver pod.
func createMirrorPod(t *testing.T, client kubernetes.Interface, nodeName string, content []byte) {
	t.Helper()
	pod, err := manifest.Parse(content)
	if err != nil {
		t.Fatal(err)
	}
	pod.Name = "kube-apiserver-" + nodeName
	pod.Spec.NodeName = nodeName
	if _, err := client.CoreV1().Pods("kube-system").Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func waitPodGone(t *testing.T, client kubernetes.Interface, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Pods("kube-system").Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("pod %s not deleted: %v", name, err)
	}
}

func assertNoNodePods(t *testing.T, client kubernetes.Interface) {
	t.Helper()
	pods, err := client.CoreV1().Pods("kube-system").List(t.Context(), metav1.ListOptions{LabelSelector: ComponentLabel + "=" + NodePodComponent})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			t.Errorf("node pod %s left behind", p.Name)
		}
	}
}

// createEKSACRD installs a minimal clusters.anywhere.eks.amazonaws.com CRD (any spec accepted) and waits until the
// apiserver serves it.
func createEKSACRD(t *testing.T, cfg *rest.Config) {
	t.Helper()
	crds := dynamic.NewForConfigOrDie(cfg).Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "clusters.anywhere.eks.amazonaws.com"},
		"spec": map[string]any{
			"group": "anywhere.eks.amazonaws.com", "scope": "Namespaced",
			"names": map[string]any{"plural": "clusters", "singular": "cluster", "kind": "Cluster", "listKind": "ClusterList"},
			"versions": []any{map[string]any{
				"name": "v1alpha1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
			}},
		},
	}}
	if _, err := crds.Create(t.Context(), crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	clusters := dynamic.NewForConfigOrDie(cfg).Resource(eksaClusters)
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if _, err := client.Discovery().ServerResourcesForGroupVersion(eksaGroupVersion); err != nil {
			return false, nil
		}
		_, err := clusters.List(ctx, metav1.ListOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("CRD never served: %v", err)
	}
}

// TestKubeadmPasses checks the order of the node pods on a three-node control plane: every node accepts irsa's
// tokens before any issues them, and Delete demotes every node before removing anything. The node pods are
// recorded instead of run (no kubelet here); TestRunNodeRestartsTheRealAPIServer runs what they run.
func TestKubeadmPasses(t *testing.T) {
	t.Parallel()
	// Its own apiserver: the shared one holds TestKubeadm's control-plane nodes.
	srv := kubeapiserver.Start(t, patchedOptions)
	ctx := t.Context()
	if _, err := srv.Client.CoreV1().ServiceAccounts("kube-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	original := readFile(t, "manifest/testdata/inputs/kubeadm.yaml")
	patched, _, err := manifest.Patch(original, manifest.PatchOptions{IssuerURL: testIssuer, Audience: config.DefaultAudience})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"cp-a", "cp-b", "cp-c"} {
		createNode(t, srv.Client, n, "")
	}
	createMirrorPod(t, srv.Client, "cp-a", patched)
	createMirrorPod(t, srv.Client, "cp-b", original)
	createMirrorPod(t, srv.Client, "cp-c", original)
	// kubeadm's stored configuration, as `kubeadm init` leaves it.
	const kubeadmConfigCase = "manifest/testdata/kubeadm-config/defaults-first-patch/"
	kubeadmConfig := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: manifest.KubeadmConfigName, Namespace: "kube-system"},
		Data: map[string]string{manifest.ClusterConfigurationKey: string(readFile(t, kubeadmConfigCase+"input.yaml"))}}
	if _, err := srv.Client.CoreV1().ConfigMaps("kube-system").Create(ctx, kubeadmConfig, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var ran []string
	record := func(_ context.Context, nodeName, op string, _ *keySecret, _ time.Duration, extra ...string) (node.Result, error) {
		ran = append(ran, strings.TrimSpace(op+" "+nodeName+" "+strings.Join(extra, " ")))
		issuers := []string{testIssuer, kubeadmIssuer}
		if op == NodeRestoreCommand {
			issuers = []string{kubeadmIssuer, testIssuer}
		}
		return node.Result{Changed: true, Manifest: DefaultManifestPath, Issuers: issuers}, nil
	}
	s := newStage(t, srv.Client, srv.Config, Options{ClusterType: ClusterKubeadm, Timeout: 5 * time.Second})
	s.runNode = record
	plan, err := s.Plan(ctx)
	if err != nil || !slices.ContainsFunc(plan, func(c stage.Change) bool {
		return c.Kind == "kubeadm-config" && strings.Contains(c.Detail, "--service-account-issuer "+testIssuer+","+kubeadmIssuer)
	}) {
		t.Errorf("Plan = %+v, %v; want a kubeadm-config update with both issuers", plan, err)
	}
	changes, err := s.Apply(ctx)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !slices.ContainsFunc(changes, func(c stage.Change) bool { return c.Kind == "kubeadm-config" }) {
		t.Errorf("Apply changes %+v: no kubeadm-config update", changes)
	}
	// kubeadm-config now holds what kubeadm needs to write the patched manifest (the golden case, checked against
	// kubeadm itself in package manifest), and the original entries for teardown.
	stored := getConfigMap(t, srv.Client)
	if got, want := stored.Data[manifest.ClusterConfigurationKey], string(readFile(t, kubeadmConfigCase+"expected.yaml")); got != want {
		t.Errorf("kubeadm-config after Apply:\n%s\nwant\n%s", got, want)
	}
	if _, ok := stored.Annotations[manifest.KubeadmRecordAnnotation]; !ok {
		t.Errorf("kubeadm-config has no %s annotation", manifest.KubeadmRecordAnnotation)
	}
	if st, err := CheckKubeadmConfig(ctx, srv.Client); err != nil || !st.Found || !st.Relevant || st.Nodes != 3 || len(st.Mismatches) != 2 {
		t.Errorf("CheckKubeadmConfig with cp-b and cp-c not yet restarted = %+v, %v; want their two mismatches", st, err)
	}
	want := []string{
		"patch-apiserver cp-b --accept-only", "patch-apiserver cp-c --accept-only",
		"patch-apiserver cp-b", "patch-apiserver cp-c",
	}
	if strings.Join(ran, "; ") != strings.Join(want, "; ") {
		t.Errorf("Apply ran\n  %s\nwant\n  %s", strings.Join(ran, "; "), strings.Join(want, "; "))
	}

	// Every node patched now (the kubelet would have replaced the mirror pods).
	for _, n := range []string{"cp-b", "cp-c"} {
		if err := srv.Client.CoreV1().Pods("kube-system").Delete(ctx, "kube-apiserver-"+n, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
		waitPodGone(t, srv.Client, "kube-apiserver-"+n)
		createMirrorPod(t, srv.Client, n, patched)
	}
	if st, err := CheckKubeadmConfig(ctx, srv.Client); err != nil || len(st.Mismatches) != 0 || st.Nodes != 3 {
		t.Errorf("CheckKubeadmConfig after Apply = %+v, %v; want 3 nodes matching", st, err)
	}
	// A second Apply changes nothing, kubeadm-config included.
	ran = nil
	if changes, err := s.Apply(ctx); err != nil || len(changes) != 0 || len(ran) != 0 {
		t.Errorf("second Apply = %+v, %v, ran %v; want nothing", changes, err, ran)
	}
	// `kubeadm upgrade` on cp-c writes its manifest again from kubeadm-config: irsa's flags, no irsa record. Apply
	// leaves it alone (the node pod would record irsa's flags as the original ones).
	rewritten, err := manifest.Parse(patched)
	if err != nil {
		t.Fatal(err)
	}
	delete(rewritten.Annotations, manifest.RecordAnnotation)
	if err := srv.Client.CoreV1().Pods("kube-system").Delete(ctx, "kube-apiserver-cp-c", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	waitPodGone(t, srv.Client, "kube-apiserver-cp-c")
	rewrittenYAML, err := yaml.Marshal(rewritten)
	if err != nil {
		t.Fatal(err)
	}
	createMirrorPod(t, srv.Client, "cp-c", rewrittenYAML)
	ran = nil
	if changes, err := s.Apply(ctx); err != nil || len(changes) != 0 || len(ran) != 0 {
		t.Errorf("Apply after kubeadm rewrote cp-c = %+v, %v, ran %v; want nothing", changes, err, ran)
	}
	ran = nil
	// The node pods are fakes here, so this apiserver keeps serving irsa's issuer: Delete runs every pass, restores
	// kubeadm-config and then fails only waiting for the original issuer (the e2e's kubeadm-upgrade subtest runs the
	// real node pods on a rewritten manifest).
	if _, err := s.Delete(ctx); err == nil || !strings.Contains(err.Error(), "the original issuer") {
		t.Fatalf("Delete: %v; want only the wait for the original issuer to fail", err)
	}
	// cp-c is restored too, from kubeadm-config's record turned into the flags kubeadm writes from the original
	// extraArgs: the defaults of this ClusterConfiguration, since kubeadm init stored none.
	rec, err := manifest.KubeadmManifestRecord(manifest.KubeadmArgs{}, readFile(t, kubeadmConfigCase+"expected.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want = []string{
		"restore-apiserver cp-a --keep-accepting", "restore-apiserver cp-b --keep-accepting", "restore-apiserver cp-c --keep-accepting --record " + rec,
		"restore-apiserver cp-a", "restore-apiserver cp-b", "restore-apiserver cp-c --record " + rec,
	}
	if strings.Join(ran, "; ") != strings.Join(want, "; ") {
		t.Errorf("Delete ran\n  %s\nwant\n  %s", strings.Join(ran, "; "), strings.Join(want, "; "))
	}
	if !strings.Contains(rec, `"service-account-issuer":["https://kubernetes.default.svc.cluster.local"]`) {
		t.Errorf("record for cp-c %s: want kubeadm's default issuer", rec)
	}
	// Teardown put kubeadm-config back as kubeadm left it.
	stored = getConfigMap(t, srv.Client)
	if got, want := stored.Data[manifest.ClusterConfigurationKey], string(readFile(t, kubeadmConfigCase+"input.yaml")); got != want {
		t.Errorf("kubeadm-config after Delete:\n%s\nwant\n%s", got, want)
	}
	if _, ok := stored.Annotations[manifest.KubeadmRecordAnnotation]; ok {
		t.Errorf("kubeadm-config keeps %s after Delete", manifest.KubeadmRecordAnnotation)
	}
}

func getConfigMap(t *testing.T, client kubernetes.Interface) *corev1.ConfigMap {
	t.Helper()
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(t.Context(), manifest.KubeadmConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}
