package setup

import (
	"cmp"
	"context"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/jwkssync"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// InstallSync is `irsa sync --install`: irsa's own IRSA for the JWKS. It binds the ServiceAccount jwkssync.ServiceAccount
// in the webhook's namespace to a role allowed only s3:PutObject on the JWKS object (an irsa binding: teardown removes
// it with the others), and creates or updates the CronJob that runs `irsa sync-job` on schedule with irsa's image.
// The webhook's namespace must exist (`irsa apply` first): the job's pods get their web identity from the webhook,
// and teardown removes the namespace, CronJob included. The pods use the verify pod's endpoints and CA bundle
// (--pod-aws-endpoint-url, --pod-sts-endpoint-url, --pod-ca-bundle) when set: emulators.
func InstallSync(ctx context.Context, cfg *config.Config, o Options, schedule string) (*Env, []stage.Change, error) {
	first := *cfg
	env, err := Connect(ctx, &first, o)
	if err != nil {
		return nil, nil, err
	}
	if env.Cluster == nil {
		return env, nil, fmt.Errorf("sync --install runs a CronJob in the cluster, and no cluster is configured: give --kubeconfig (or set KUBECONFIG)")
	}
	if _, err := env.Cluster.Client.CoreV1().Namespaces().Get(ctx, config.WebhookNamespace, metav1.GetOptions{}); err != nil {
		return env, nil, fmt.Errorf("namespace %s (the webhook's, where the sync job runs with a web identity): %w; run `irsa apply` first", config.WebhookNamespace, err)
	}
	t := env.Target
	var ca []byte
	if f := cfg.Verify.PodCABundle; f != "" {
		if ca, err = os.ReadFile(f); err != nil {
			return env, nil, fmt.Errorf("read pod CA bundle %q: %w", f, err)
		}
	}
	b := config.Binding{Namespace: config.WebhookNamespace, ServiceAccount: jwkssync.ServiceAccount, CreateServiceAccount: true,
		InlinePolicy: jwkssync.PutPolicy(t.Partition, t.Issuer.Bucket, t.Issuer.JWKSKey)}
	if env, err = ConnectBinding(ctx, cfg, b, o); err != nil {
		return env, nil, err
	}
	t = env.Target
	tb := t.Bindings[len(t.Bindings)-1]
	changes, err := env.BindingsStage().Bind(ctx, tb.Binding, tb.RoleARN)
	if err != nil {
		return env, changes, err
	}
	spec := jwkssync.JobSpec{ClusterName: t.ClusterName, Image: t.Config.Image, Schedule: cmp.Or(schedule, jwkssync.DefaultSchedule),
		IssuerURL: t.Issuer.URL, Bucket: t.Issuer.Bucket, JWKSKey: t.Issuer.JWKSKey, Region: t.Region,
		EndpointURL: t.Config.Verify.PodEndpointURL, STSEndpointURL: cmp.Or(t.Config.Verify.PodSTSEndpointURL, t.Config.Verify.PodEndpointURL),
		CABundle: ca, ImagePullSecrets: t.Config.Images.PullSecrets}
	c := env.Cluster.Client
	if len(ca) > 0 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: jwkssync.CAConfigMap, Namespace: config.WebhookNamespace,
			Labels: map[string]string{config.ManagedByTagKey: config.ManagedByValue}}, Data: map[string]string{"ca.pem": string(ca)}}
		if ch, err := upsert(ctx, "configmap", cm.Namespace+"/"+cm.Name,
			func() error {
				_, err := c.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: config.FieldManager})
				return err
			},
			func() (bool, error) {
				old, err := c.CoreV1().ConfigMaps(cm.Namespace).Get(ctx, cm.Name, metav1.GetOptions{})
				if err != nil || old.Data["ca.pem"] == cm.Data["ca.pem"] {
					return false, err
				}
				old.Data = cm.Data
				_, err = c.CoreV1().ConfigMaps(cm.Namespace).Update(ctx, old, metav1.UpdateOptions{FieldManager: config.FieldManager})
				return true, err
			}); err != nil {
			return env, changes, err
		} else if ch != nil {
			changes = append(changes, *ch)
		}
	}
	cj := jwkssync.CronJob(spec)
	ch, err := upsert(ctx, "cronjob", cj.Namespace+"/"+cj.Name,
		func() error {
			_, err := c.BatchV1().CronJobs(cj.Namespace).Create(ctx, cj, metav1.CreateOptions{FieldManager: config.FieldManager})
			return err
		},
		func() (bool, error) {
			old, err := c.BatchV1().CronJobs(cj.Namespace).Get(ctx, cj.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			want := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]
			have := old.Spec.JobTemplate.Spec.Template.Spec.Containers
			if old.Spec.Schedule == cj.Spec.Schedule && len(have) == 1 && have[0].Image == want.Image && fmt.Sprint(have[0].Command) == fmt.Sprint(want.Command) && fmt.Sprint(have[0].Env) == fmt.Sprint(want.Env) {
				return false, nil
			}
			old.Spec = cj.Spec
			_, err = c.BatchV1().CronJobs(cj.Namespace).Update(ctx, old, metav1.UpdateOptions{FieldManager: config.FieldManager})
			return true, err
		})
	if ch != nil {
		changes = append(changes, *ch)
	}
	return env, changes, err
}

// upsert creates an object, or updates it when update says it differed; it returns the change made, if any.
func upsert(ctx context.Context, kind, name string, create func() error, update func() (bool, error)) (*stage.Change, error) {
	err := create()
	switch {
	case err == nil:
		return &stage.Change{Action: stage.Create, Kind: kind, Name: name}, nil
	case !apierrors.IsAlreadyExists(err):
		return nil, fmt.Errorf("create %s %s: %w", kind, name, err)
	}
	changed, err := update()
	if err != nil {
		return nil, fmt.Errorf("update %s %s: %w", kind, name, err)
	}
	if !changed {
		return nil, nil
	}
	return &stage.Change{Action: stage.Update, Kind: kind, Name: name}, nil
}
