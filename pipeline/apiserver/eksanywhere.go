package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// The EKS Anywhere Cluster API. spec.podIamConfig.serviceAccountIssuer is the supported way to set the issuer: the
// EKS Anywhere controller renders it into the KubeadmControlPlane and rolls the control-plane machines; edits of
// the nodes' manifests would be reverted at its next rollout.
const (
	eksaGroupVersion = "anywhere.eks.amazonaws.com/v1alpha1"
	eksaResource     = "clusters"
)

// eksAnywhere is the platform of EKS Anywhere clusters: irsa sets spec.podIamConfig.serviceAccountIssuer on the
// Cluster object (on the management cluster) and the EKS Anywhere controller rolls the control plane.
type eksAnywhere struct{ *Stage }

var eksaClusters = schema.GroupVersionResource{Group: "anywhere.eks.amazonaws.com", Version: "v1alpha1", Resource: eksaResource}

// eksaTarget is the Cluster object and the issuer it sets now ("" when podIamConfig is unset).
type eksaTarget struct {
	client          dynamic.NamespaceableResourceInterface
	namespace, name string
	issuer          string
	// extraArgs is spec.controlPlaneConfiguration.apiServerExtraArgs.
	extraArgs map[string]string
}

// Flags of kube-apiserver irsa reads or sets through the Cluster object.
const (
	eksaIssuerArg  = "service-account-issuer"
	eksaJWKSURIArg = "service-account-jwks-uri"
)

// eksaPatch is the merge patch that sets the issuer, also printed for the user when irsa cannot apply it. With
// jwksURI it also sets --service-account-jwks-uri through apiServerExtraArgs (a merge patch leaves the other
// arguments alone); issuer "" removes podIamConfig, and removeJWKS irsa's --service-account-jwks-uri.
//
// EKS Anywhere renders podIamConfig as the one --service-account-issuer of the control plane and joins it with a
// comma to a service-account-issuer set in apiServerExtraArgs (pkg/clusterapi SetPodIAMAuthExtraArgs and
// SetPodIAMAuthInArgs in v0.26.1); kube-apiserver does not split the flag on commas, so irsa never lets both be set
// (eksaCheck) and never writes the issuer into apiServerExtraArgs.
func eksaPatch(issuer, jwksURI string, removeJWKS bool) string {
	var v any
	if issuer != "" {
		v = map[string]any{"serviceAccountIssuer": issuer}
	}
	spec := map[string]any{"podIamConfig": v}
	switch {
	case jwksURI != "":
		spec["controlPlaneConfiguration"] = map[string]any{"apiServerExtraArgs": map[string]any{eksaJWKSURIArg: jwksURI}}
	case removeJWKS:
		spec["controlPlaneConfiguration"] = map[string]any{"apiServerExtraArgs": map[string]any{eksaJWKSURIArg: nil}}
	}
	b, _ := json.Marshal(map[string]any{"spec": spec})
	return string(b)
}

// eksaCheck refuses a Cluster object on which podIamConfig would be joined into a comma-separated issuer.
func (t *eksaTarget) check() error {
	if v, ok := t.extraArgs[eksaIssuerArg]; ok {
		return fmt.Errorf("eks-anywhere: cluster %s/%s: spec.controlPlaneConfiguration.apiServerExtraArgs sets %s=%q; EKS Anywhere would join it and spec.podIamConfig.serviceAccountIssuer with a comma into one issuer kube-apiserver cannot use (the flag is not split on commas): remove it from apiServerExtraArgs (EKS Anywhere keeps one issuer only), then run irsa again",
			t.namespace, t.name, eksaIssuerArg, v)
	}
	return nil
}

// eksaByHand says how to apply the patch without irsa.
func (s eksAnywhere) byHand(name, patch string) string {
	if name == "" {
		name = "CLUSTER_NAME"
	}
	return fmt.Sprintf("apply it on the management cluster: kubectl patch clusters.anywhere.eks.amazonaws.com %s --type merge -p '%s' (or set spec.podIamConfig.serviceAccountIssuer in the cluster spec and run eksctl anywhere upgrade cluster)", name, patch)
}

func (s eksAnywhere) target(ctx context.Context) (*eksaTarget, error) {
	cfg := s.opts.ManagementConfig
	if cfg == nil {
		cfg = s.config
	}
	wantName := s.opts.EKSAnywhereCluster
	ns, name := "default", wantName
	if before, after, ok := strings.Cut(wantName, "/"); ok {
		ns, name = before, after
	}
	byHand := s.byHand(name, eksaPatch(s.opts.IssuerURL, "", false))
	if cfg == nil {
		return nil, fmt.Errorf("eks-anywhere: no client configuration for the management cluster; %s", byHand)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("eks-anywhere: client for %s: %w; %s", cfg.Host, err, byHand)
	}
	clusters := dyn.Resource(eksaClusters)
	var obj *unstructured.Unstructured
	if name != "" {
		obj, err = clusters.Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("eks-anywhere: get cluster %s/%s (%s): %w; %s", ns, name, eksaGroupVersion, explain(err), byHand)
		}
	} else {
		list, err := clusters.List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("eks-anywhere: list clusters (%s): %w; %s", eksaGroupVersion, explain(err), byHand)
		}
		if len(list.Items) != 1 {
			var names []string
			for _, c := range list.Items {
				names = append(names, c.GetNamespace()+"/"+c.GetName())
			}
			return nil, fmt.Errorf("eks-anywhere: %d Cluster objects (%s): name the one to configure (namespace/name)", len(list.Items), strings.Join(names, ", "))
		}
		obj = &list.Items[0]
	}
	issuer, _, err := unstructured.NestedString(obj.Object, "spec", "podIamConfig", "serviceAccountIssuer")
	if err != nil {
		return nil, fmt.Errorf("eks-anywhere: cluster %s/%s: spec.podIamConfig.serviceAccountIssuer: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	extraArgs, _, err := unstructured.NestedStringMap(obj.Object, "spec", "controlPlaneConfiguration", "apiServerExtraArgs")
	if err != nil {
		return nil, fmt.Errorf("eks-anywhere: cluster %s/%s: spec.controlPlaneConfiguration.apiServerExtraArgs: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return &eksaTarget{client: clusters, namespace: obj.GetNamespace(), name: obj.GetName(), issuer: issuer, extraArgs: extraArgs}, nil
}

// eksaPlan is what Apply would do to the Cluster object and what it costs the running pods.
type eksaPlan struct {
	// patch is the merge patch, "" when the object is as wanted.
	patch string
	// jwksURI is the --service-account-jwks-uri set through apiServerExtraArgs, "" when the cluster does not
	// accept apiServerExtraArgs (EKS Anywhere refuses them unless its API_SERVER_EXTRA_ARGS_ENABLED feature is on).
	jwksURI string
	// replaces is the issuer the apiserver serves now when the change replaces it, "" when it does not.
	replaces string
	holders  TokenHolders
	// machines are the control-plane machines the change makes EKS Anywhere replace, by name.
	machines []string
}

// plan works out the patch with a server-side dry run of it (which also asks EKS Anywhere's validation whether
// apiServerExtraArgs are allowed), and, when the issuer is replaced, the pods holding tokens of the old one.
func (s eksAnywhere) plan(ctx context.Context, t *eksaTarget) (*eksaPlan, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	p := &eksaPlan{}
	jwksURI := documents.JoinURL(s.opts.IssuerURL, config.JWKSKey)
	if t.issuer == s.opts.IssuerURL && t.extraArgs[eksaJWKSURIArg] == jwksURI {
		return p, nil
	}
	p.patch = eksaPatch(s.opts.IssuerURL, jwksURI, false)
	dry, err := t.client.Namespace(t.namespace).Patch(ctx, t.name, types.MergePatchType, []byte(p.patch), metav1.PatchOptions{FieldManager: config.FieldManager, DryRun: []string{metav1.DryRunAll}})
	var accepted string
	if err == nil {
		accepted, _, _ = unstructured.NestedString(dry.Object, "spec", "controlPlaneConfiguration", "apiServerExtraArgs", eksaJWKSURIArg)
	}
	if accepted == jwksURI {
		p.jwksURI = jwksURI
	} else {
		s.log.Debug("the cluster does not take apiServerExtraArgs: the issuer only", "cluster", t.namespace+"/"+t.name, "dryRun", errString(err))
		if t.issuer == s.opts.IssuerURL {
			return &eksaPlan{}, nil
		}
		p.patch = eksaPatch(s.opts.IssuerURL, "", false)
	}
	if p.machines, err = s.controlPlaneMachines(ctx, t); err != nil {
		return nil, err
	}
	if t.issuer != s.opts.IssuerURL {
		served, err := ServedIssuer(ctx, s.client)
		if err != nil {
			return nil, fmt.Errorf("eks-anywhere: the issuer the cluster serves now: %w", err)
		}
		if served != s.opts.IssuerURL {
			p.replaces = served
			if p.holders, err = ProjectedTokenHolders(ctx, s.client); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// change describes the plan in the words the user must read before accepting it.
func (p *eksaPlan) change(t *eksaTarget, want string) stage.Change {
	detail := fmt.Sprintf("spec.podIamConfig.serviceAccountIssuer %q -> %q", t.issuer, want)
	if p.jwksURI != "" {
		detail += fmt.Sprintf(", apiServerExtraArgs %s=%s", eksaJWKSURIArg, p.jwksURI)
	}
	if p.replaces != "" {
		detail += "; " + p.disruption(want)
	}
	return stage.Change{Action: stage.Update, Kind: "eks-anywhere-cluster", Name: t.namespace + "/" + t.name, Detail: detail,
		Disruption: p.roll()}
}

// roll says which machines the change rolls: any change of podIamConfig or apiServerExtraArgs changes the
// KubeadmControlPlane EKS Anywhere renders, and Cluster API replaces every control-plane machine, one at a time.
func (p *eksaPlan) roll() string {
	which := "every control-plane machine"
	if len(p.machines) > 0 {
		which = fmt.Sprintf("the %d control-plane machine(s) %s", len(p.machines), strings.Join(p.machines, ", "))
	}
	return fmt.Sprintf("EKS Anywhere rolls the control plane: Cluster API replaces %s one at a time with new machines whose kube-apiserver has the new flags (each replacement takes minutes; irsa waits up to 30m)", which)
}

// capiMachines are Cluster API's Machines, which EKS Anywhere's control-plane machines are on the management cluster.
var capiMachines = schema.GroupVersionResource{Group: "cluster.x-k8s.io", Version: "v1beta1", Resource: "machines"}

// controlPlaneMachines names the machines a change of t rolls: the Cluster API Machines of t's control plane on the
// management cluster (labels cluster.x-k8s.io/cluster-name and cluster.x-k8s.io/control-plane), or, where they
// cannot be read, the workload cluster's control-plane Nodes. Empty when neither says.
func (s eksAnywhere) controlPlaneMachines(ctx context.Context, t *eksaTarget) ([]string, error) {
	cfg := s.opts.ManagementConfig
	if cfg == nil {
		cfg = s.config
	}
	if cfg != nil {
		if dyn, err := dynamic.NewForConfig(cfg); err == nil {
			list, err := dyn.Resource(capiMachines).List(ctx, metav1.ListOptions{LabelSelector: "cluster.x-k8s.io/control-plane,cluster.x-k8s.io/cluster-name=" + t.name})
			if err == nil && len(list.Items) > 0 {
				var names []string
				for _, m := range list.Items {
					names = append(names, m.GetName())
				}
				slices.Sort(names)
				return names, nil
			}
			s.log.Debug("eks-anywhere: control-plane Machines not readable, naming the control-plane nodes", "error", errString(err))
		}
	}
	nodes, err := s.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "node-role.kubernetes.io/control-plane"})
	if err != nil {
		if apierrors.IsForbidden(err) {
			return nil, nil // the plan still says every control-plane machine rolls
		}
		return nil, fmt.Errorf("eks-anywhere: list control-plane nodes: %w", err)
	}
	var names []string
	for _, n := range nodes.Items {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	return names, nil
}

// disruption says what replacing the issuer does to running pods.
func (p *eksaPlan) disruption(want string) string {
	return fmt.Sprintf("REPLACES the issuer %q (EKS Anywhere keeps exactly one, so tokens of the old issuer stop authenticating once the control plane has rolled): %d running pod(s) hold projected service account tokens from %q and fail against the apiserver until the kubelet refreshes them, within %s after the rollout (80%% of each token's lifetime, at most 24h)",
		p.replaces, p.holders.Pods, p.replaces, p.holders.RefreshWithin)
}

// Plan says whether the Cluster object changes and, when the issuer is replaced, what that does to running pods.
func (s eksAnywhere) Plan(ctx context.Context) ([]stage.Change, error) {
	t, err := s.target(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.plan(ctx, t)
	if err != nil || p.patch == "" {
		return nil, err
	}
	return []stage.Change{p.change(t, s.opts.IssuerURL)}, nil
}

// Apply sets the Cluster object's issuer and waits for the rolled-out control plane to serve it. Replacing the
// issuer the cluster serves needs Options.AcceptIssuerReplacement; without it Apply writes nothing.
func (s eksAnywhere) Apply(ctx context.Context) ([]stage.Change, error) {
	t, err := s.target(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.plan(ctx, t)
	if err != nil {
		return nil, err
	}
	if p.replaces != "" && !s.opts.AcceptIssuerReplacement {
		return nil, fmt.Errorf("eks-anywhere: cluster %s/%s: setting spec.podIamConfig.serviceAccountIssuer %s; nothing was changed: run again with --accept-issuer-replacement to accept this (or plan a window for it)",
			t.namespace, t.name, p.disruption(s.opts.IssuerURL))
	}
	var changes []stage.Change
	if p.patch != "" {
		s.log.Info("setting the EKS Anywhere cluster's service account issuer", "cluster", t.namespace+"/"+t.name, "issuer", s.opts.IssuerURL)
		if _, err := t.client.Namespace(t.namespace).Patch(ctx, t.name, types.MergePatchType, []byte(p.patch), metav1.PatchOptions{FieldManager: config.FieldManager}); err != nil {
			return nil, fmt.Errorf("eks-anywhere: patch cluster %s/%s: %w; %s", t.namespace, t.name, explain(err), s.byHand(t.name, p.patch))
		}
		changes = append(changes, p.change(t, s.opts.IssuerURL))
	}
	timeout := s.timeout(ClusterEKSAnywhere)
	s.log.Info("waiting for EKS Anywhere to roll out the control plane", "timeout", timeout)
	stage.Waiting(ctx, fmt.Sprintf("EKS Anywhere to replace the control-plane machines one by one until the apiserver serves issuer %s (up to %s)", s.opts.IssuerURL, timeout))
	if _, err := s.waitServed(ctx, timeout, fmt.Sprintf("issuer %q", s.opts.IssuerURL), func(i string) bool { return i == s.opts.IssuerURL }); err != nil {
		return changes, fmt.Errorf("eks-anywhere: %w (the EKS Anywhere controller replaces control-plane machines one by one: check `kubectl get kcp -A` on the management cluster)", err)
	}
	return changes, nil
}

// Delete removes irsa's issuer from the Cluster object, only when it is still irsa's value.
func (s eksAnywhere) Delete(ctx context.Context) ([]stage.Change, error) {
	t, err := s.target(ctx)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if t.issuer != s.opts.IssuerURL {
		// Not irsa's value (or already removed): leave it.
		return nil, nil
	}
	patch := eksaPatch("", "", t.extraArgs[eksaJWKSURIArg] == documents.JoinURL(s.opts.IssuerURL, config.JWKSKey))
	if _, err := t.client.Namespace(t.namespace).Patch(ctx, t.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: config.FieldManager}); err != nil {
		return nil, fmt.Errorf("eks-anywhere: patch cluster %s/%s: %w; %s", t.namespace, t.name, explain(err), s.byHand(t.name, patch))
	}
	changes := []stage.Change{{Action: stage.Update, Kind: "eks-anywhere-cluster", Name: t.namespace + "/" + t.name,
		Detail: fmt.Sprintf("spec.podIamConfig.serviceAccountIssuer %q -> \"\"", t.issuer)}}
	if _, err := s.waitServed(ctx, s.timeout(ClusterEKSAnywhere), fmt.Sprintf("an issuer other than %q", s.opts.IssuerURL), func(i string) bool { return i != s.opts.IssuerURL }); err != nil {
		return changes, fmt.Errorf("eks-anywhere: %w", err)
	}
	return changes, nil
}
