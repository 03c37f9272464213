package apiserver

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// A signing key Secret left by a run killed while its node pods ran is shown by plan and deleted by the next apply or
// teardown, whatever the cluster type and whether anything else is to do (the issuer is served: the platform has
// nothing to change). A Secret of that name that irsa did not label is not irsa's and stays.
func TestLeftoverKeySecretIsRemoved(t *testing.T) {
	t.Parallel()
	srv := patchedServer(t)
	ctx := t.Context()
	ns := "leftover-key"
	if _, err := srv.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	leave := func(labels map[string]string) {
		t.Helper()
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: keySecretName, Namespace: ns, Labels: labels},
			Data: map[string][]byte{keySecretKey: []byte("private key")}}
		if _, err := srv.Client.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	gone := func() bool {
		_, err := srv.Client.CoreV1().Secrets(ns).Get(ctx, keySecretName, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}
	irsas := map[string]string{config.ManagedByTagKey: config.ManagedByValue, ComponentLabel: NodePodComponent}
	for _, typ := range []string{ClusterKind, ClusterExternal} {
		s := newStage(t, srv.Client, srv.Config, Options{ClusterType: typ, Namespace: ns})
		for name, run := range map[string]func(context.Context) ([]stage.Change, error){"apply": s.Apply, "delete": s.Delete} {
			leave(irsas)
			changes, err := s.Plan(ctx)
			if err != nil || len(changes) != 1 || changes[0].Action != stage.Delete || changes[0].Name != ns+"/"+keySecretName {
				t.Errorf("%s plan with a leftover key secret: %+v, %v; want its deletion", typ, changes, err)
			}
			changes, err = run(ctx)
			if err != nil || len(changes) != 1 || changes[0].Kind != "secret" {
				t.Errorf("%s %s with a leftover key secret: %+v, %v; want the secret deleted", typ, name, changes, err)
			}
			if !gone() {
				t.Errorf("%s %s left the signing key secret", typ, name)
			}
			if changes, err := run(ctx); err != nil || len(changes) != 0 {
				t.Errorf("%s %s a second time: %+v, %v; want nothing", typ, name, changes, err)
			}
		}
	}
	leave(map[string]string{"app": "someone-else"})
	s := newStage(t, srv.Client, srv.Config, Options{ClusterType: ClusterExternal, Namespace: ns})
	if changes, err := s.Delete(ctx); err != nil || len(changes) != 0 || gone() {
		t.Errorf("delete with an unlabelled secret of that name: %+v, %v, deleted %v; want it kept", changes, err, gone())
	}
}
