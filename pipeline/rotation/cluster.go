package rotation

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
)

// NodeKeys is what one control-plane node's kube-apiserver mirror pod says about its keys.
type NodeKeys struct {
	Node string
	// SigningKID is the kid of irsa's key the apiserver signs with (manifest.SigningKeyAnnotation); empty when it
	// signs with the cluster's own key.
	SigningKID string
	// KeyFiles are its --service-account-key-file values.
	KeyFiles []string
	// StartedAt is when its kube-apiserver container started (the mirror pod's creation when unknown): it signs
	// with SigningKID since then at the latest.
	StartedAt time.Time
}

// State is what the cluster says about a rotation: the control-plane apiservers' keys and the token settings.
type State struct {
	Nodes    []NodeKeys
	Settings TokenSettings
}

// Read reads the kube-apiserver mirror pods of the control-plane nodes (kubeadm static pods) and the token
// projections of every running pod. A node without a mirror pod is an error: what its apiserver accepts is unknown.
func Read(ctx context.Context, client kubernetes.Interface) (State, error) {
	var st State
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: apiserver.ControlPlaneLabel})
	if err != nil {
		return st, fmt.Errorf("list control-plane nodes: %w", err)
	}
	if len(nodes.Items) == 0 {
		return st, fmt.Errorf("no node is labelled %s: rotate-key changes kube-apiserver static pods on kubeadm control-plane nodes", apiserver.ControlPlaneLabel)
	}
	st.Settings.ExtendTokenExpiration = true // kube-apiserver's default
	for i, n := range nodes.Items {
		pod, err := client.CoreV1().Pods("kube-system").Get(ctx, "kube-apiserver-"+n.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return st, fmt.Errorf("node %s has no kube-apiserver mirror pod (kube-system/kube-apiserver-%s): its apiserver's keys are unknown; wait for the kubelet to report it", n.Name, n.Name)
		}
		if err != nil {
			return st, fmt.Errorf("get mirror pod kube-system/kube-apiserver-%s: %w", n.Name, err)
		}
		c, err := manifest.Container(pod)
		if err != nil {
			return st, err
		}
		nk := NodeKeys{Node: n.Name, SigningKID: pod.Annotations[manifest.SigningKeyAnnotation], KeyFiles: manifest.FlagValues(c, "service-account-key-file"), StartedAt: pod.CreationTimestamp.Time}
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.Name == manifest.ContainerName && cs.State.Running != nil {
				nk.StartedAt = cs.State.Running.StartedAt.Time
			}
		}
		st.Nodes = append(st.Nodes, nk)
		if i == 0 {
			if v := manifest.FlagValues(c, "service-account-max-token-expiration"); len(v) > 0 {
				if st.Settings.MaxTokenExpiration, err = time.ParseDuration(v[len(v)-1]); err != nil {
					return st, fmt.Errorf("kube-apiserver on %s: --service-account-max-token-expiration=%s: %w", n.Name, v[len(v)-1], err)
				}
			}
			if v := manifest.FlagValues(c, "service-account-extend-token-expiration"); len(v) > 0 {
				if st.Settings.ExtendTokenExpiration, err = strconv.ParseBool(v[len(v)-1]); err != nil {
					return st, fmt.Errorf("kube-apiserver on %s: --service-account-extend-token-expiration=%s: %w", n.Name, v[len(v)-1], err)
				}
			}
		}
	}
	slices.SortFunc(st.Nodes, func(a, b NodeKeys) int { return strings.Compare(a.Node, b.Node) })
	pods, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Running"})
	if err != nil {
		return st, fmt.Errorf("list running pods (their token lifetimes bound the retire time): %w", err)
	}
	for _, p := range pods.Items {
		st.Settings.Projected = append(st.Settings.Projected, projections(&p)...)
	}
	return st, nil
}

func projections(p *corev1.Pod) []ProjectedToken {
	var out []ProjectedToken
	for _, v := range p.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if t := src.ServiceAccountToken; t != nil {
				out = append(out, ProjectedToken{Pod: p.Namespace + "/" + p.Name, Audience: t.Audience, ExpirationSeconds: ptrValue(t.ExpirationSeconds)})
			}
		}
	}
	return out
}

func ptrValue(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// NotSigningWith lists the nodes whose apiserver does not sign with irsa's key kid.
func (s State) NotSigningWith(kid string) []string {
	var out []string
	for _, n := range s.Nodes {
		if n.SigningKID != kid {
			out = append(out, n.Node)
		}
	}
	return out
}

// PromotedAt is when the last apiserver (re)started: every apiserver signs with its current key since then.
func (s State) PromotedAt() time.Time {
	var t time.Time
	for _, n := range s.Nodes {
		if n.StartedAt.After(t) {
			t = n.StartedAt
		}
	}
	return t
}

// PreviousKIDs are the kids, among served (what /openid/v1/jwks lists), of irsa's public keys that some apiserver
// still accepts besides the one it signs with (currentKID): the keys `rotate-key retire` removes. irsa's key files
// are named after their kid's first 16 characters (node.KeyFileNames); the cluster's own key files are never listed.
func (s State) PreviousKIDs(currentKID string, served []string) []string {
	prefixes := map[string]bool{}
	for _, n := range s.Nodes {
		for _, f := range n.KeyFiles {
			base := path.Base(f)
			if !strings.HasPrefix(base, manifest.KeyFilePrefix) || !strings.HasSuffix(base, ".pub") {
				continue
			}
			prefixes[strings.TrimSuffix(strings.TrimPrefix(base, manifest.KeyFilePrefix), ".pub")] = true
		}
	}
	var out []string
	for _, kid := range served {
		short := kid
		if len(short) > 16 {
			short = short[:16]
		}
		if kid != currentKID && prefixes[short] {
			out = append(out, kid)
		}
	}
	slices.Sort(out)
	return out
}
