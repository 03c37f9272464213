package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/irsa-anywhere/irsa/pipeline/config"
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
}

// eksaPatch is the merge patch that sets the issuer, also printed for the user when irsa cannot apply it.
func eksaPatch(issuer string) string {
	var v any
	if issuer != "" {
		v = map[string]any{"serviceAccountIssuer": issuer}
	}
	b, _ := json.Marshal(map[string]any{"spec": map[string]any{"podIamConfig": v}})
	return string(b)
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
	byHand := s.byHand(name, eksaPatch(s.opts.IssuerURL))
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
	return &eksaTarget{client: clusters, namespace: obj.GetNamespace(), name: obj.GetName(), issuer: issuer}, nil
}

func (t *eksaTarget) change(want string) stage.Change {
	return stage.Change{Action: stage.Update, Kind: "eks-anywhere-cluster", Name: t.namespace + "/" + t.name,
		Detail: fmt.Sprintf("spec.podIamConfig.serviceAccountIssuer %q -> %q", t.issuer, want)}
}

// Plan says whether the Cluster object's issuer changes.
func (s eksAnywhere) Plan(ctx context.Context) ([]stage.Change, error) {
	t, err := s.target(ctx)
	if err != nil {
		return nil, err
	}
	if t.issuer == s.opts.IssuerURL {
		return nil, nil
	}
	return []stage.Change{t.change(s.opts.IssuerURL)}, nil
}

// Apply sets the Cluster object's issuer and waits for the rolled-out control plane to serve it.
func (s eksAnywhere) Apply(ctx context.Context) ([]stage.Change, error) {
	t, err := s.target(ctx)
	if err != nil {
		return nil, err
	}
	var changes []stage.Change
	if t.issuer != s.opts.IssuerURL {
		patch := eksaPatch(s.opts.IssuerURL)
		s.log.Info("setting the EKS Anywhere cluster's service account issuer", "cluster", t.namespace+"/"+t.name, "issuer", s.opts.IssuerURL)
		if _, err := t.client.Namespace(t.namespace).Patch(ctx, t.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: config.FieldManager}); err != nil {
			return nil, fmt.Errorf("eks-anywhere: patch cluster %s/%s: %w; %s", t.namespace, t.name, explain(err), s.byHand(t.name, patch))
		}
		changes = append(changes, t.change(s.opts.IssuerURL))
	}
	timeout := s.timeout(ClusterEKSAnywhere)
	s.log.Info("waiting for EKS Anywhere to roll out the control plane", "timeout", timeout)
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
	patch := eksaPatch("")
	if _, err := t.client.Namespace(t.namespace).Patch(ctx, t.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: config.FieldManager}); err != nil {
		return nil, fmt.Errorf("eks-anywhere: patch cluster %s/%s: %w; %s", t.namespace, t.name, explain(err), s.byHand(t.name, patch))
	}
	changes := []stage.Change{t.change("")}
	if _, err := s.waitServed(ctx, s.timeout(ClusterEKSAnywhere), fmt.Sprintf("an issuer other than %q", s.opts.IssuerURL), func(i string) bool { return i != s.opts.IssuerURL }); err != nil {
		return changes, fmt.Errorf("eks-anywhere: %w", err)
	}
	return changes, nil
}
