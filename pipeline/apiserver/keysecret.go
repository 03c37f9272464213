package apiserver

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// leftoverKeySecret finds the Secret carrying the signing key to the node pods when a run did not get to delete it
// (it was killed, or lost the cluster, while the node pods ran): nil when there is none. Only irsa's Secret is found:
// the name, and the labels irsa puts on it (managed-by irsa, component apiserver-node).
func (s *Stage) leftoverKeySecret(ctx context.Context) (*corev1.Secret, error) {
	sec, err := s.client.CoreV1().Secrets(s.opts.Namespace).Get(ctx, keySecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read secret %s/%s (the signing key for the node pods): %w", s.opts.Namespace, keySecretName, explain(err))
	}
	if sec.Labels[config.ManagedByTagKey] != config.ManagedByValue || sec.Labels[ComponentLabel] != NodePodComponent {
		return nil, nil
	}
	return sec, nil
}

func keySecretChange(sec *corev1.Secret) stage.Change {
	return stage.Change{Action: stage.Delete, Kind: "secret", Name: sec.Namespace + "/" + sec.Name,
		Detail: "left by an interrupted run: it holds a private signing key"}
}

// planKeySecret reports a leftover key Secret as a deletion.
func (s *Stage) planKeySecret(ctx context.Context) ([]stage.Change, error) {
	sec, err := s.leftoverKeySecret(ctx)
	if err != nil || sec == nil {
		return nil, err
	}
	return []stage.Change{keySecretChange(sec)}, nil
}

// removeKeySecret deletes a leftover key Secret. Apply and Delete call it first, whatever the platform, so a private
// key never outlives the run after the one that left it (a run in progress is excluded by the cluster's lock).
func (s *Stage) removeKeySecret(ctx context.Context) ([]stage.Change, error) {
	sec, err := s.leftoverKeySecret(ctx)
	if err != nil || sec == nil {
		return nil, err
	}
	err = s.client.CoreV1().Secrets(sec.Namespace).Delete(ctx, sec.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &sec.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("delete secret %s/%s left by an interrupted run (it holds a private signing key): %w", sec.Namespace, sec.Name, explain(err))
	}
	return []stage.Change{keySecretChange(sec)}, nil
}
