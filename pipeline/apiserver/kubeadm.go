package apiserver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/node"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// kubeadm is the platform of kubeadm clusters: irsa edits each control-plane node's kube-apiserver static pod
// manifest through a short-lived node pod (nodepod.go) that runs `irsa node patch-apiserver` (package node) on it.
// What a node needs is read from its mirror pod, so Plan and a repeated Apply start no pod.
type kubeadm struct{ *Stage }

// Plan lists the nodes whose manifest Apply would change.
func (s kubeadm) Plan(ctx context.Context) ([]stage.Change, error) {
	nodes, err := s.nodesToPatch(ctx)
	if err != nil {
		return nil, err
	}
	if s.opts.AcceptOnly {
		// A staged key changes nothing else: only the nodes that do not accept it yet.
		for i := range nodes {
			nodes[i].upToDate = nodes[i].accepts
		}
		changes := nodeChanges(nodes)
		for i := range changes {
			changes[i].Detail = "accepts the staged key (--service-account-key-file); the current key still signs"
		}
		return changes, nil
	}
	changes := nodeChanges(nodes)
	if s.opts.RetireOtherKeys {
		for i := range changes {
			changes[i].Detail = "drops irsa's previous public keys from --service-account-key-file"
		}
	}
	update, err := s.planKubeadmConfig(ctx, nodes)
	if err != nil {
		return nil, err
	}
	if update != nil {
		changes = append(changes, update.change())
	}
	return changes, nil
}

// nodeState is a control-plane node and what its mirror pod says about its manifest.
type nodeState struct {
	name string
	// mirror is the node's kube-apiserver mirror pod, nil when there is none.
	mirror *corev1.Pod
	// patched: the mirror pod carries irsa's record. upToDate: Patch would change nothing. accepts: it already
	// accepts irsa's tokens (an accept-only Patch would change nothing). demoted: Demote would change nothing.
	patched, upToDate, accepts, demoted bool
	issuers                             []string
	// rewritten: kubeadm wrote the manifest again from kubeadm-config (kubeadm upgrade) after irsa had put its
	// flags there: the flags are irsa's but the record is gone, so the node pod must not patch (it would record
	// irsa's flags as the original ones) and cannot restore.
	rewritten bool
}

func (s kubeadm) controlPlaneNodes(ctx context.Context) ([]nodeState, error) {
	list, err := s.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: ControlPlaneLabel})
	if err != nil {
		return nil, fmt.Errorf("list control-plane nodes (label %s): %w", ControlPlaneLabel, explain(err))
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("no node is labelled %s: irsa patches kube-apiserver static pods on kubeadm control-plane nodes; for a managed or hand-built control plane use --cluster-type external", ControlPlaneLabel)
	}
	var nodes []nodeState
	for _, n := range list.Items {
		st := nodeState{name: n.Name}
		mirror, err := s.client.CoreV1().Pods("kube-system").Get(ctx, "kube-apiserver-"+n.Name, metav1.GetOptions{})
		switch {
		case err == nil:
			st.mirror = mirror
		case apierrors.IsNotFound(err):
		default:
			return nil, fmt.Errorf("get mirror pod kube-system/kube-apiserver-%s: %w", n.Name, explain(err))
		}
		nodes = append(nodes, st)
	}
	slices.SortFunc(nodes, func(a, b nodeState) int { return strings.Compare(a.name, b.name) })
	return nodes, nil
}

// nodesToPatch returns the control-plane nodes with, for each, whether its manifest already is what Apply wants.
// A node without a readable mirror pod is assumed to need the node pod (which changes nothing if it is patched).
func (s kubeadm) nodesToPatch(ctx context.Context) ([]nodeState, error) {
	nodes, err := s.controlPlaneNodes(ctx)
	if err != nil {
		return nil, err
	}
	want, err := s.patchOptions()
	if err != nil {
		return nil, err
	}
	for i := range nodes {
		n := &nodes[i]
		if n.mirror == nil {
			continue
		}
		_, n.patched = n.mirror.Annotations[manifest.RecordAnnotation]
		var err error
		if n.issuers, err = manifest.PodIssuers(n.mirror); err != nil {
			return nil, fmt.Errorf("mirror pod kube-system/%s: %w", n.mirror.Name, err)
		}
		accept := want
		accept.AcceptOnly, accept.RetireOtherKeys = true, false
		if n.upToDate, err = manifest.Unchanged(n.mirror, func(p *corev1.Pod) error { return manifest.PatchPod(p, want) }); err != nil {
			return nil, fmt.Errorf("mirror pod kube-system/%s: %w", n.mirror.Name, err)
		}
		if n.accepts, err = manifest.Unchanged(n.mirror, func(p *corev1.Pod) error { return manifest.PatchPod(p, accept) }); err != nil {
			return nil, fmt.Errorf("mirror pod kube-system/%s: %w", n.mirror.Name, err)
		}
		if n.demoted, err = manifest.Unchanged(n.mirror, manifest.DemotePod); err != nil {
			return nil, fmt.Errorf("mirror pod kube-system/%s: %w", n.mirror.Name, err)
		}
	}
	return nodes, s.markRewritten(ctx, nodes, want)
}

// markRewritten finds the nodes whose manifest kubeadm wrote from the kubeadm-config irsa changed: no record, the
// flags Patch would write. They count as up to date.
func (s kubeadm) markRewritten(ctx context.Context, nodes []nodeState, want manifest.PatchOptions) error {
	cm, err := kubeadmConfigMap(ctx, s.client)
	if err != nil || cm == nil {
		return err
	}
	if _, recorded := cm.Annotations[manifest.KubeadmRecordAnnotation]; !recorded {
		return nil
	}
	for i := range nodes {
		n := &nodes[i]
		if n.mirror == nil || n.patched {
			continue
		}
		running, err := manifest.PodKubeadmArgs(n.mirror)
		if err != nil {
			return fmt.Errorf("mirror pod kube-system/%s: %w", n.mirror.Name, err)
		}
		patched := n.mirror.DeepCopy()
		if err := manifest.PatchPod(patched, want); err != nil {
			return fmt.Errorf("mirror pod kube-system/%s: %w", n.mirror.Name, err)
		}
		wanted, err := manifest.PodKubeadmArgs(patched)
		if err != nil {
			return err
		}
		if running.Equal(wanted) {
			n.rewritten, n.upToDate, n.accepts = true, true, true
		}
	}
	return nil
}

// patchOptions are the manifest edits the node pods make on every control-plane node.
func (s kubeadm) patchOptions() (manifest.PatchOptions, error) {
	want := manifest.PatchOptions{IssuerURL: s.opts.IssuerURL, Audience: s.opts.Audience, RetireOtherKeys: s.opts.RetireOtherKeys}
	if s.opts.SigningKey != nil {
		_, _, kid, err := node.ParseSigningKey(s.opts.SigningKey)
		if err != nil {
			return want, err
		}
		privName, pubName := node.KeyFileNames(kid)
		want.SigningKey = &manifest.KeyFiles{PrivateKey: node.DefaultPKIDir + "/" + privName, PublicKey: node.DefaultPKIDir + "/" + pubName, KeyID: kid}
	}
	return want, nil
}

func nodeChanges(nodes []nodeState) []stage.Change {
	var changes []stage.Change
	for _, n := range nodes {
		if n.upToDate {
			continue
		}
		detail := "mirror pod not found: the node pod will check the manifest"
		if n.mirror != nil {
			detail = fmt.Sprintf("--service-account-issuer %s", strings.Join(n.issuers, ","))
		}
		changes = append(changes, stage.Change{Action: stage.Update, Kind: "kube-apiserver-manifest", Name: n.name, Detail: detail,
			Disruption: "kube-apiserver on " + n.name + " restarts: the API is unreachable there for 10-20 s, and kube-controller-manager may lose its leader lease"})
	}
	return changes
}

// Apply runs the node pod on every control-plane node whose manifest is not what irsa wants (with several, in two
// passes: every apiserver accepts irsa's tokens before any issues them), then waits for the apiserver to serve the
// issuer and, with a provided key, to verify with it.
func (s kubeadm) Apply(ctx context.Context) ([]stage.Change, error) {
	nodes, err := s.nodesToPatch(ctx)
	if err != nil {
		return nil, err
	}
	if s.opts.AcceptOnly {
		return s.acceptKey(ctx, nodes)
	}
	// Checked before the first write: a ClusterConfiguration irsa cannot edit stops Apply here.
	configUpdate, err := s.planKubeadmConfig(ctx, nodes)
	if err != nil {
		return nil, err
	}
	todo := slices.DeleteFunc(slices.Clone(nodes), func(n nodeState) bool { return n.upToDate })
	// A node kubeadm rewrote from irsa's kubeadm-config has lost irsa's record: its node pod gets the original flags.
	rec, err := s.recordArgs(ctx)
	if err != nil {
		return nil, err
	}
	timeout := s.timeout(ClusterKubeadm)
	var changes []stage.Change
	if len(todo) > 0 {
		var keyMount *keySecret
		if s.opts.SigningKey != nil {
			keyMount, err = s.createKeySecret(ctx)
			if err != nil {
				return nil, err
			}
			defer s.deleteKeySecret(keyMount)
		}
		if len(nodes) > 1 {
			// First pass: every apiserver accepts irsa's tokens before any issues them, or a token issued by a
			// patched apiserver would fail on the others (and stay failing if a later node cannot be patched).
			accepting := slices.DeleteFunc(slices.Clone(nodes), func(n nodeState) bool { return n.accepts })
			acceptPass := pass{op: node.PatchCommand, args: append([]string{"--accept-only"}, rec...), key: keyMount, timeout: timeout,
				progress: "making kube-apiserver accept the irsa issuer (first pass)",
				detail:   func(r node.Result) string { return "accepts --service-account-issuer " + strings.Join(r.Issuers, ",") }}
			if _, err := s.run(ctx, acceptPass, accepting, &changes); err != nil {
				return changes, err
			}
		}
		patchArgs := rec
		if s.opts.RetireOtherKeys {
			patchArgs = append([]string{"--retire-other-keys"}, rec...)
		}
		patchPass := pass{op: node.PatchCommand, args: patchArgs, key: keyMount, timeout: timeout, progress: "patching kube-apiserver",
			detail: func(r node.Result) string { return "--service-account-issuer " + strings.Join(r.Issuers, ",") }}
		if _, err := s.run(ctx, patchPass, todo, &changes); err != nil {
			return changes, err
		}
	}
	s.log.Info("waiting for the apiserver to serve the issuer", "issuer", s.opts.IssuerURL)
	stage.Waiting(ctx, fmt.Sprintf("kube-apiserver to serve issuer %s (up to %s)", s.opts.IssuerURL, timeout))
	if _, err := s.waitServed(ctx, timeout, fmt.Sprintf("issuer %q", s.opts.IssuerURL), func(i string) bool { return i == s.opts.IssuerURL }); err != nil {
		return changes, fmt.Errorf("%w; every node reported its apiserver serving it: a load balancer in front of the apiservers may still reach an old one (irsa delete restores the previous flags)", err)
	}
	if s.opts.SigningKey != nil {
		if err := s.checkServedKey(ctx); err != nil {
			return changes, err
		}
	}
	if configUpdate != nil {
		if err := s.updateKubeadmConfig(ctx, configUpdate); err != nil {
			return changes, err
		}
		changes = append(changes, configUpdate.change())
	}
	return changes, nil
}

// acceptKey makes every apiserver that does not accept the signing key yet accept it (an accept-only patch: one
// restart per such node), then checks that the apiserver serves its public key.
func (s kubeadm) acceptKey(ctx context.Context, nodes []nodeState) ([]stage.Change, error) {
	todo := slices.DeleteFunc(slices.Clone(nodes), func(n nodeState) bool { return n.accepts })
	rec, err := s.recordArgs(ctx) // see Apply
	if err != nil {
		return nil, err
	}
	timeout := s.timeout(ClusterKubeadm)
	var changes []stage.Change
	if len(todo) > 0 {
		keyMount, err := s.createKeySecret(ctx)
		if err != nil {
			return nil, err
		}
		defer s.deleteKeySecret(keyMount)
		acceptPass := pass{op: node.PatchCommand, args: append([]string{"--accept-only"}, rec...), key: keyMount, timeout: timeout,
			progress: "making kube-apiserver accept the staged key",
			detail: func(r node.Result) string {
				return "accepts key " + r.KeyID + " (--service-account-key-file), still signs with the previous key"
			}}
		if _, err := s.run(ctx, acceptPass, todo, &changes); err != nil {
			return changes, err
		}
	}
	if _, err := s.waitServed(ctx, timeout, fmt.Sprintf("issuer %q", s.opts.IssuerURL), func(string) bool { return true }); err != nil {
		return changes, err
	}
	return changes, s.checkServedKey(ctx)
}

// checkServedKey makes sure the apiserver verifies with irsa's key, so the JWKS the issuer publishes has it.
func (s kubeadm) checkServedKey(ctx context.Context) error {
	_, _, kid, err := node.ParseSigningKey(s.opts.SigningKey)
	if err != nil {
		return err
	}
	keys, err := ServedKeys(ctx, s.client)
	if err != nil {
		return err
	}
	var served []string
	for _, k := range keys.Keys {
		if k.KeyID == kid {
			return nil
		}
		served = append(served, k.KeyID)
	}
	return fmt.Errorf("apiserver serves the issuer but not irsa's signing key %s in %s (it serves %s)", kid, JWKSPath, strings.Join(served, ", "))
}

// Delete restores every node irsa patched (with several, in two passes: every apiserver issues with the original
// issuer again before any stops accepting irsa's tokens) and waits for the original issuer to be served.
func (s kubeadm) Delete(ctx context.Context) ([]stage.Change, error) {
	all, err := s.nodesToPatch(ctx)
	if err != nil {
		return nil, err
	}
	// A node without a mirror pod gets the node pod, which changes nothing where irsa did not patch. A node whose
	// manifest kubeadm wrote again from the kubeadm-config irsa changed has irsa's flags without irsa's record: its
	// node pod restores from the record of kubeadm-config, turned into the flags kubeadm writes from the original
	// extraArgs (manifest.KubeadmManifestRecord), which is the manifest the next `kubeadm upgrade` would write too.
	nodes := slices.DeleteFunc(slices.Clone(all), func(n nodeState) bool { return n.mirror != nil && !n.patched && !n.rewritten })
	args, err := s.rewrittenRestoreArgs(ctx, nodes)
	if err != nil {
		return nil, err
	}
	timeout := s.timeout(ClusterKubeadm)
	var changes []stage.Change
	if len(all) > 1 {
		// First pass: every apiserver issues with the original issuer and key again while still accepting irsa's
		// tokens, which apiservers not yet demoted keep issuing.
		for _, n := range nodes {
			if n.mirror != nil && n.demoted && !n.rewritten {
				continue
			}
			demotePass := pass{op: node.RestoreCommand, args: append([]string{"--keep-accepting"}, args[n.name]...), timeout: timeout,
				progress: "making kube-apiserver issue with the original issuer (first pass)",
				detail: func(r node.Result) string {
					return "issues for " + r.Issuers[0] + ", still accepts " + strings.Join(r.Issuers[1:], ",")
				}}
			if _, err := s.run(ctx, demotePass, []nodeState{n}, &changes); err != nil {
				return changes, err
			}
		}
	}
	var restored []node.Result
	for _, n := range nodes {
		restorePass := pass{op: node.RestoreCommand, args: args[n.name], timeout: timeout, progress: "restoring kube-apiserver",
			detail: func(r node.Result) string { return "--service-account-issuer " + strings.Join(r.Issuers, ",") }}
		res, err := s.run(ctx, restorePass, []nodeState{n}, &changes)
		restored = append(restored, res...)
		if err != nil {
			return changes, err
		}
	}
	// The manifests hold the original flags again: so does kubeadm-config, or the next `kubeadm upgrade` would
	// bring irsa's issuer back.
	configRestore, err := s.restoreKubeadmConfig(ctx)
	if err != nil {
		return changes, err
	}
	if configRestore != nil {
		changes = append(changes, *configRestore)
	}
	var restoredIssuer string
	if len(restored) > 0 {
		restoredIssuer = restored[len(restored)-1].Issuers[0]
	}
	if restoredIssuer == "" {
		return changes, nil
	}
	if _, err := s.waitServed(ctx, timeout, fmt.Sprintf("the original issuer %q", restoredIssuer), func(i string) bool { return i == restoredIssuer }); err != nil {
		return changes, err
	}
	return changes, nil
}

// recordArgs returns the node pod arguments that carry the original flags to a node whose manifest has no irsa
// record: --record with the flags kubeadm writes from the extraArgs kubeadm-config held before irsa changed it
// (manifest.KubeadmManifestRecord). None when kubeadm-config carries no irsa record (irsa did not change it).
func (s kubeadm) recordArgs(ctx context.Context) ([]string, error) {
	cm, err := kubeadmConfigMap(ctx, s.client)
	if err != nil || cm == nil {
		return nil, err
	}
	raw, ok := cm.Annotations[manifest.KubeadmRecordAnnotation]
	if !ok {
		return nil, nil
	}
	original, err := manifest.DecodeKubeadmRecord(raw)
	if err != nil {
		return nil, fmt.Errorf("configmap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	rec, err := manifest.KubeadmManifestRecord(original, []byte(cm.Data[manifest.ClusterConfigurationKey]))
	if err != nil {
		return nil, fmt.Errorf("configmap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return []string{"--record", rec}, nil
}

// rewrittenRestoreArgs returns, by node name, the extra arguments of the restore node pod of each node kubeadm
// rewrote (recordArgs); other nodes restore from their own record.
func (s kubeadm) rewrittenRestoreArgs(ctx context.Context, nodes []nodeState) (map[string][]string, error) {
	if !slices.ContainsFunc(nodes, func(n nodeState) bool { return n.rewritten }) {
		return nil, nil
	}
	rec, err := s.recordArgs(ctx)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("configmap %s/%s carries no irsa record: cannot work out the original flags of the apiservers kubeadm rewrote", manifest.KubeadmConfigNamespace, manifest.KubeadmConfigName)
	}
	args := map[string][]string{}
	for _, n := range nodes {
		if n.rewritten {
			args[n.name] = rec
		}
	}
	return args, nil
}

// pass is one round of the node subcommand over control-plane nodes.
type pass struct {
	// op is node.PatchCommand or node.RestoreCommand; args are its extra flags (--accept-only, --keep-accepting).
	op   string
	args []string
	// key is the Secret with the signing key the node pods mount, nil for none.
	key     *keySecret
	timeout time.Duration
	// progress is the log line for each node; detail describes a node's change from its Result.
	progress string
	detail   func(node.Result) string
}

// run runs the pass on each node in turn and stops at the first failure. A node that reports a change adds one to
// changes; the Results of those nodes are returned in order.
func (s kubeadm) run(ctx context.Context, p pass, nodes []nodeState, changes *[]stage.Change) ([]node.Result, error) {
	var changed []node.Result
	for _, n := range nodes {
		s.log.Info(p.progress, "node", n.name, "command", p.op)
		stage.Waiting(ctx, fmt.Sprintf("%s on node %s (a pod of irsa's edits the manifest; the kubelet restarts kube-apiserver, unreachable for 10-20 s; up to %s)", p.progress, n.name, p.timeout))
		res, err := s.runNode(ctx, n.name, p.op, p.key, p.timeout, p.args...)
		if err != nil {
			return changed, err
		}
		if res.Changed {
			changed = append(changed, res)
			*changes = append(*changes, stage.Change{Action: stage.Update, Kind: "kube-apiserver-manifest", Name: n.name, Detail: p.detail(res)})
		}
	}
	return changed, nil
}
