package bindings

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// ServiceAccounts is the cluster half of a binding: the annotated ServiceAccount.
type ServiceAccounts interface {
	Plan(ctx context.Context, b config.Binding, roleARN string) ([]stage.Change, error)
	Bind(ctx context.Context, b config.Binding, roleARN string) ([]stage.Change, error)
	// Check reads, and fails when b's ServiceAccount is missing and b does not ask to create it.
	Check(ctx context.Context, b config.Binding) error
	Unbind(ctx context.Context, b config.Binding) ([]stage.Change, error)
}

// Stage is the bindings stage: a role for every configured binding and, when a cluster is configured, its annotated
// ServiceAccount.
type Stage struct {
	Roles    *roles.Manager
	Bindings []config.Binding
	// ServiceAccounts is nil when no cluster is configured.
	ServiceAccounts ServiceAccounts
}

// Name implements stage.Stage.
func (s *Stage) Name() string { return stage.Bindings }

func (s *Stage) Plan(ctx context.Context) ([]stage.Change, error) {
	return s.each(ctx, func(b config.Binding, arn string) ([]stage.Change, error) {
		c, err := s.Roles.Plan(ctx, b)
		if err != nil || s.ServiceAccounts == nil {
			return c, err
		}
		sc, err := s.ServiceAccounts.Plan(ctx, b, arn)
		return append(c, sc...), err
	})
}

func (s *Stage) Apply(ctx context.Context) ([]stage.Change, error) {
	return s.each(ctx, func(b config.Binding, arn string) ([]stage.Change, error) {
		return s.Bind(ctx, b, arn)
	})
}

// Check fails, before any write, when a binding's ServiceAccount is missing and the binding does not ask irsa to create
// it (config.Binding.CreateServiceAccount). Without a cluster there is nothing to check.
func (s *Stage) Check(ctx context.Context) error {
	if s.ServiceAccounts == nil {
		return nil
	}
	var errs []error
	for _, b := range s.Bindings {
		errs = append(errs, s.ServiceAccounts.Check(ctx, b))
	}
	return errors.Join(errs...)
}

// Bind makes the role for b and annotates its ServiceAccount with arn. A missing ServiceAccount that b does not ask
// to create fails before the role is made.
func (s *Stage) Bind(ctx context.Context, b config.Binding, arn string) ([]stage.Change, error) {
	if s.ServiceAccounts != nil {
		if err := s.ServiceAccounts.Check(ctx, b); err != nil {
			return nil, err
		}
	}
	c, err := s.Roles.Ensure(ctx, b)
	if err != nil || s.ServiceAccounts == nil {
		return c, err
	}
	sc, err := s.ServiceAccounts.Bind(ctx, b, arn)
	return append(c, sc...), err
}

// Unbind removes what irsa set on b's ServiceAccount and deletes b's role. A role irsa does not own for b (another
// cluster's, nobody's, or another ServiceAccount's: roles.ErrNotOwned) is an error, and then nothing is changed.
func (s *Stage) Unbind(ctx context.Context, b config.Binding) ([]stage.Change, error) {
	if err := s.Roles.CheckOwned(ctx, b); err != nil {
		return nil, err
	}
	var changes []stage.Change
	if s.ServiceAccounts != nil && b.Namespace != "" {
		c, err := s.ServiceAccounts.Unbind(ctx, b)
		changes = append(changes, c...)
		if err != nil {
			return changes, err
		}
	}
	c, err := s.Roles.Remove(ctx, b)
	return append(changes, c...), err
}

// Delete unbinds every configured binding, then every other role irsa made for this cluster (those made by
// `irsa bind`), found under the cluster's IAM path and rebuilt from their ServiceAccount tag. A role that apply would
// refuse to manage is kept and reported as kept, never deleted.
func (s *Stage) Delete(ctx context.Context) ([]stage.Change, error) {
	var changes []stage.Change
	unbind := func(b config.Binding) error {
		c, err := s.Unbind(ctx, b)
		changes = append(changes, c...)
		if errors.Is(err, roles.ErrNotOwned) {
			changes = append(changes, stage.Change{Action: stage.Keep, Kind: "iam-role", Name: b.RoleName, Detail: err.Error()})
			return nil
		}
		return err
	}
	done := map[string]bool{}
	for _, b := range s.Bindings {
		done[b.RoleName] = true
		if err := unbind(b); err != nil {
			return changes, err
		}
	}
	names, err := s.Roles.Owned(ctx)
	if err != nil {
		return changes, err
	}
	for _, n := range names {
		if done[n] {
			continue
		}
		b, err := s.Roles.BindingOf(ctx, n)
		if err != nil {
			return changes, err
		}
		if err := unbind(b); err != nil {
			return changes, err
		}
	}
	// Existing roles bound with a role ARN by `irsa bind` are found by the annotation irsa set on their ServiceAccount.
	if l, ok := s.ServiceAccounts.(annotatedLister); ok {
		found, err := l.Annotated(ctx)
		if err != nil {
			return changes, err
		}
		for _, b := range found {
			if b.RoleARN != "" {
				if err := unbind(b); err != nil {
					return changes, err
				}
			}
		}
	}
	return changes, nil
}

func (s *Stage) each(ctx context.Context, f func(config.Binding, string) ([]stage.Change, error)) ([]stage.Change, error) {
	var changes []stage.Change
	for _, b := range s.Bindings {
		arn, err := s.Roles.RoleARN(ctx, b)
		if err != nil {
			return changes, err
		}
		c, err := f(b, arn)
		changes = append(changes, c...)
		if err != nil {
			return changes, err
		}
	}
	return changes, nil
}

// InjectionTimeout bounds the wait, after a ServiceAccount is bound, until new pods of it get the web identity.
const InjectionTimeout = 2 * time.Minute

// ClusterServiceAccounts is the cluster half of the bindings stage on a live cluster.
type ClusterServiceAccounts struct {
	Client      kubernetes.Interface
	ClusterName string
}

func (s *ClusterServiceAccounts) binding(b config.Binding, roleARN string) Binding {
	out := Binding{Namespace: b.Namespace, ServiceAccount: b.ServiceAccount, RoleARN: roleARN, ClusterName: s.ClusterName,
		Audience: b.Audience, STSRegionalEndpoints: b.STSRegionalEndpoints, RequireExisting: !b.CreateServiceAccount}
	if b.TokenExpiration != "" {
		out.TokenExpiration, _ = time.ParseDuration(b.TokenExpiration) // validated with the configuration
	}
	return out
}

// Plan implements ServiceAccounts.
func (s *ClusterServiceAccounts) Plan(ctx context.Context, b config.Binding, roleARN string) ([]stage.Change, error) {
	return PlanBindServiceAccount(ctx, s.Client, s.binding(b, roleARN))
}

// Bind annotates the ServiceAccount and, when irsa's webhook is installed, returns only once new pods of it get the
// web identity: the webhook fails open, so a pod started before it sees the annotation runs without credentials.
func (s *ClusterServiceAccounts) Bind(ctx context.Context, b config.Binding, roleARN string) ([]stage.Change, error) {
	changes, err := BindServiceAccount(ctx, s.Client, s.binding(b, roleARN))
	if err != nil || len(changes) == 0 {
		// Unchanged: it was bound, and waited for, by an earlier run.
		return changes, err
	}
	name := "irsa-" + config.WebhookName
	_, err = s.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return changes, nil
	}
	if err != nil {
		return changes, fmt.Errorf("read mutating webhook configuration %s: %w", name, err)
	}
	return changes, WaitInjected(ctx, s.Client, b.Namespace, b.ServiceAccount, roleARN, InjectionTimeout)
}

// Check implements ServiceAccounts.
func (s *ClusterServiceAccounts) Check(ctx context.Context, b config.Binding) error {
	return CheckServiceAccount(ctx, s.Client, s.binding(b, ""))
}

// Unbind implements ServiceAccounts.
func (s *ClusterServiceAccounts) Unbind(ctx context.Context, b config.Binding) ([]stage.Change, error) {
	return UnbindServiceAccount(ctx, s.Client, s.binding(b, ""))
}
