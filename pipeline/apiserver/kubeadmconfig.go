package apiserver

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// `kubeadm upgrade` writes the static pod manifests again from the ClusterConfiguration in kube-system/kubeadm-config
// and so drops flags set in the manifest only (kubernetes/kubeadm#2157). The kubeadm platform keeps the flags it
// changes in that ClusterConfiguration too: set after the nodes are patched, put back after they are restored.

// kubeadmConfigUpdate is a change of the kubeadm-config ConfigMap that Apply makes.
type kubeadmConfigUpdate struct {
	cm *corev1.ConfigMap
	// doc is the new ClusterConfiguration; record, when not empty, the value of manifest.KubeadmRecordAnnotation to
	// add (the ConfigMap has none yet).
	doc, record string
	args        manifest.KubeadmArgs
}

func (u *kubeadmConfigUpdate) change() stage.Change {
	var parts []string
	for _, name := range []string{"service-account-issuer", "api-audiences", "service-account-key-file", "service-account-signing-key-file"} {
		if v := u.args[name]; len(v) > 0 {
			parts = append(parts, "--"+name+" "+strings.Join(v, ","))
		}
	}
	return stage.Change{Action: stage.Update, Kind: "kubeadm-config", Name: manifest.KubeadmConfigNamespace + "/" + manifest.KubeadmConfigName,
		Detail: "apiServer.extraArgs " + strings.Join(parts, " ")}
}

func kubeadmConfigMap(ctx context.Context, client kubernetes.Interface) (*corev1.ConfigMap, error) {
	cm, err := client.CoreV1().ConfigMaps(manifest.KubeadmConfigNamespace).Get(ctx, manifest.KubeadmConfigName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get configmap %s/%s: %w", manifest.KubeadmConfigNamespace, manifest.KubeadmConfigName, explain(err))
	}
	if _, ok := cm.Data[manifest.ClusterConfigurationKey]; !ok {
		return nil, nil
	}
	return cm, nil
}

// planKubeadmConfig returns the kubeadm-config change Apply makes so that kubeadm writes the manifest irsa wants,
// nil when there is none. The wanted flags are those of the first node's mirror pod with irsa's patch applied: the
// node pod makes the same pure edit. A cluster without kubeadm-config (a control plane not made by kubeadm) or
// without a readable mirror pod gets no change.
func (s kubeadm) planKubeadmConfig(ctx context.Context, nodes []nodeState) (*kubeadmConfigUpdate, error) {
	cm, err := kubeadmConfigMap(ctx, s.client)
	if err != nil || cm == nil {
		if cm == nil && err == nil {
			s.log.Debug("no kubeadm-config ClusterConfiguration: only the manifests are patched")
		}
		return nil, err
	}
	var mirror *corev1.Pod
	for _, n := range nodes {
		if n.mirror != nil {
			mirror = n.mirror.DeepCopy()
			break
		}
	}
	if mirror == nil {
		s.log.Debug("no kube-apiserver mirror pod: kubeadm-config is left as it is")
		return nil, nil
	}
	want, err := s.patchOptions()
	if err != nil {
		return nil, err
	}
	if err := manifest.PatchPod(mirror, want); err != nil {
		return nil, fmt.Errorf("mirror pod kube-system/%s: %w", mirror.Name, err)
	}
	args, err := manifest.PodKubeadmArgs(mirror)
	if err != nil {
		return nil, err
	}
	doc := cm.Data[manifest.ClusterConfigurationKey]
	updated, changed, err := manifest.SetClusterConfigurationArgs([]byte(doc), args)
	if err != nil {
		return nil, fmt.Errorf("configmap %s/%s: %w", manifest.KubeadmConfigNamespace, manifest.KubeadmConfigName, err)
	}
	u := &kubeadmConfigUpdate{cm: cm, doc: string(updated), args: args}
	if _, recorded := cm.Annotations[manifest.KubeadmRecordAnnotation]; !recorded {
		original, err := manifest.ClusterConfigurationArgs([]byte(doc))
		if err != nil {
			return nil, err
		}
		if u.record, err = manifest.EncodeKubeadmRecord(original); err != nil {
			return nil, err
		}
	}
	if !changed && u.record == "" {
		return nil, nil
	}
	return u, nil
}

// updateKubeadmConfig writes the update with the resourceVersion it was planned from: kubeadm owns the ConfigMap
// and writes it whole, so a concurrent change makes this fail instead of being overwritten.
func (s kubeadm) updateKubeadmConfig(ctx context.Context, u *kubeadmConfigUpdate) error {
	cm := u.cm.DeepCopy()
	cm.Data[manifest.ClusterConfigurationKey] = u.doc
	if u.record != "" {
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations[manifest.KubeadmRecordAnnotation] = u.record
	}
	s.log.Info("updating kubeadm-config so that kubeadm upgrade keeps the issuer flags")
	if _, err := s.client.CoreV1().ConfigMaps(cm.Namespace).Update(ctx, cm, metav1.UpdateOptions{FieldManager: config.FieldManager}); err != nil {
		return fmt.Errorf("update configmap %s/%s: %w; run irsa apply again", cm.Namespace, cm.Name, explain(err))
	}
	return nil
}

// restoreKubeadmConfig puts back the apiServer.extraArgs entries recorded before irsa first changed them and
// removes the record; a ConfigMap without the record is left alone.
func (s kubeadm) restoreKubeadmConfig(ctx context.Context) (*stage.Change, error) {
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
	doc, _, err := manifest.SetClusterConfigurationArgs([]byte(cm.Data[manifest.ClusterConfigurationKey]), original)
	if err != nil {
		return nil, fmt.Errorf("configmap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	cm = cm.DeepCopy()
	cm.Data[manifest.ClusterConfigurationKey] = string(doc)
	delete(cm.Annotations, manifest.KubeadmRecordAnnotation)
	if _, err := s.client.CoreV1().ConfigMaps(cm.Namespace).Update(ctx, cm, metav1.UpdateOptions{FieldManager: config.FieldManager}); err != nil {
		return nil, fmt.Errorf("restore configmap %s/%s: %w; run irsa teardown again", cm.Namespace, cm.Name, explain(err))
	}
	return &stage.Change{Action: stage.Update, Kind: "kubeadm-config", Name: cm.Namespace + "/" + cm.Name, Detail: "apiServer.extraArgs restored"}, nil
}

// KubeadmConfigStatus says whether kube-system/kubeadm-config would make kubeadm write the apiserver flags irsa
// changes as the running apiservers have them.
type KubeadmConfigStatus struct {
	// Found is false when there is no kubeadm-config ClusterConfiguration (not a kubeadm cluster).
	Found bool
	// Relevant is false when neither the mirror pods nor the ConfigMap carry irsa's record: irsa changed nothing.
	Relevant bool
	// Nodes is how many control-plane mirror pods were compared; Mismatches names each that differs and how.
	Nodes      int
	Mismatches []string
}

// CheckKubeadmConfig compares the flags irsa changes in kubeadm-config's apiServer.extraArgs with those of every
// control-plane node's kube-apiserver mirror pod. Errors are for what could not be read.
func CheckKubeadmConfig(ctx context.Context, client kubernetes.Interface) (KubeadmConfigStatus, error) {
	var st KubeadmConfigStatus
	cm, err := kubeadmConfigMap(ctx, client)
	if err != nil || cm == nil {
		return st, err
	}
	st.Found = true
	_, st.Relevant = cm.Annotations[manifest.KubeadmRecordAnnotation]
	stored, err := manifest.ClusterConfigurationArgs([]byte(cm.Data[manifest.ClusterConfigurationKey]))
	if err != nil {
		return st, fmt.Errorf("configmap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	nodes, err := kubeadm{&Stage{client: client}}.controlPlaneNodes(ctx)
	if err != nil {
		return st, err
	}
	for _, n := range nodes {
		if n.mirror == nil {
			continue
		}
		if _, patched := n.mirror.Annotations[manifest.RecordAnnotation]; patched {
			st.Relevant = true
		}
		running, err := manifest.PodKubeadmArgs(n.mirror)
		if err != nil {
			return st, fmt.Errorf("mirror pod kube-system/%s: %w", n.mirror.Name, err)
		}
		st.Nodes++
		if !running.Equal(stored) {
			st.Mismatches = append(st.Mismatches, fmt.Sprintf("%s runs --service-account-issuer %s, kubeadm-config has %s",
				n.name, strings.Join(running["service-account-issuer"], ","), strings.Join(stored["service-account-issuer"], ",")))
		}
	}
	return st, nil
}
