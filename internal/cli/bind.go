package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/ack"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/setup"
)

type bindOptions struct {
	roleOptions
	lockWait        time.Duration
	policyARNs      []string
	inlinePolicy    string
	roleName        string
	audience        string
	stsRegional     string
	tokenExpiration string
	createSA        bool
	ack             string
}

// binding parses the command line into a binding; its role name, when not given, is resolved with the target. An
// empty ref leaves the namespace and ServiceAccount to --ack's controller.
func (o *bindOptions) binding(ref string) (config.Binding, error) {
	var ns, sa string
	if ref != "" {
		var err error
		if ns, sa, err = config.ParseServiceAccountRef(ref); err != nil {
			return config.Binding{}, err
		}
	}
	b := config.Binding{Namespace: ns, ServiceAccount: sa, PolicyARNs: o.policyARNs, RoleName: o.roleName,
		Audience: o.audience, TokenExpiration: o.tokenExpiration, CreateServiceAccount: o.createSA, ACK: o.ack}
	switch o.stsRegional {
	case "":
	case "true", "false":
		v := o.stsRegional == "true"
		b.STSRegionalEndpoints = &v
	default:
		return b, fmt.Errorf("--sts-regional-endpoints %q: must be true or false", o.stsRegional)
	}
	if err := o.roleOptions.apply(&b); err != nil {
		return b, err
	}
	if o.inlinePolicy != "" {
		data, err := os.ReadFile(o.inlinePolicy)
		if err != nil {
			return b, fmt.Errorf("read inline policy %q: %w", o.inlinePolicy, err)
		}
		b.InlinePolicy = string(data)
	}
	return b, nil
}

func newBindCommand(g *globalOptions) *cobra.Command {
	o := &bindOptions{}
	cmd := &cobra.Command{
		Use:   "bind NAMESPACE/SERVICEACCOUNT --policy-arn ARN [--policy-arn ARN...] | bind --ack SERVICE",
		Short: "Give a service account an IAM role",
		Long: `bind creates (or updates) an IAM role whose trust policy admits only this service account's tokens with the
audience, attaches the policies, and, when a cluster is configured, annotates the service account with
eks.amazonaws.com/role-arn. The service account must exist unless --create-service-account lets irsa create it (and
its namespace), so a typo in NAMESPACE/SERVICEACCOUNT is an error, not a new service account.

--ack SERVICE binds an AWS Controllers for Kubernetes controller: its chart's ServiceAccount (ack-system/
ack-SERVICE-controller unless NAMESPACE/SERVICEACCOUNT is given) gets a role with the managed policy its project
recommends unless --policy-arn or --inline-policy is given. Install the controller's chart first (it creates the
ServiceAccount); restart the controller afterwards (irsa heal) so it starts with the web identity.`,
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := o.parse(args)
			if err != nil {
				return err
			}
			ref := b.Ref()
			if err := checkLockTimeout(o.lockWait); err != nil {
				return err
			}
			if len(b.PolicyARNs) == 0 && b.InlinePolicy == "" && b.RoleARN == "" && b.ACK == "" {
				return fmt.Errorf("bind %s: give at least one --policy-arn or an --inline-policy (or --role-arn to bind an existing role)", ref)
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			inFile := g.fileBinding(cfg, b)
			env, err := setup.ConnectBinding(cmd.Context(), cfg, b, g.setupOptions())
			if err != nil {
				return err
			}
			release, _, err := g.lock(cmd.Context(), env, "bind", false, nil, o.lockWait)
			defer release()
			if err != nil {
				return err
			}
			tb := env.Target.Bindings[len(env.Target.Bindings)-1]
			if err := env.CheckProvider(cmd.Context(), tb.Binding.Audience); err != nil {
				return err
			}
			arn := tb.RoleARN
			p := g.progress()
			changes, err := env.BindingsStage().Bind(p.Context(cmd.Context(), "bind"), tb.Binding, arn)
			p.Close()
			if err != nil {
				return err
			}
			if g.structured() {
				return g.write(inFile.result(map[string]any{"serviceAccount": ref, "roleARN": arn, "changes": nonNil(changes)}))
			}
			writeChanges(g.stdout, "  ", changes)
			fmt.Fprintf(g.stdout, "%s is bound to %s\n", ref, arn)
			if env.Cluster == nil {
				fmt.Fprintf(g.stdout, "no cluster configured: annotate the service account yourself:\n  %s\n", annotateCommand(tb.Binding, arn))
			}
			inFile.note(g.stdout)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&o.policyARNs, "policy-arn", nil, "managed policy to attach (repeatable)")
	o.roleOptions.add(cmd)
	cmd.Flags().StringVar(&o.inlinePolicy, "inline-policy", "", "JSON policy document FILE to put on the role as an inline policy")
	cmd.Flags().StringVar(&o.roleName, "role-name", "", "role name (default irsa-CLUSTER-NAMESPACE-SERVICEACCOUNT)")
	cmd.Flags().StringVar(&o.audience, "sa-audience", "", "token audience for this service account (eks.amazonaws.com/audience); the provider must list it")
	cmd.Flags().StringVar(&o.stsRegional, "sts-regional-endpoints", "", "true or false: eks.amazonaws.com/sts-regional-endpoints")
	cmd.Flags().StringVar(&o.tokenExpiration, "token-expiration", "", "projected token lifetime, such as 1h (eks.amazonaws.com/token-expiration)")
	cmd.Flags().BoolVar(&o.createSA, "create-service-account", false, "create the service account (and its namespace) when it does not exist; without it a missing one is an error")
	cmd.Flags().StringVar(&o.ack, "ack", "", "bind the ACK controller of this AWS service: "+strings.Join(ack.Services(), ", "))
	addLockFlag(cmd, &o.lockWait)
	addTargetFlags(cmd, g)
	return cmd
}

func newUnbindCommand(g *globalOptions) *cobra.Command {
	o := &bindOptions{}
	var yes bool
	cmd := &cobra.Command{
		Use:   "unbind NAMESPACE/SERVICEACCOUNT",
		Short: "Remove a service account's IAM role and the annotations irsa set",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := o.binding(args[0])
			if err != nil {
				return err
			}
			if err := checkLockTimeout(o.lockWait); err != nil {
				return err
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			env, err := setup.ConnectBinding(cmd.Context(), cfg, b, g.setupOptions())
			if err != nil {
				return err
			}
			tb := env.Target.Bindings[len(env.Target.Bindings)-1]
			if err := env.BindingsStage().Roles.CheckOwned(cmd.Context(), tb.Binding); err != nil {
				return err
			}
			removes, err := env.UnbindSummary(cmd.Context(), tb.Binding)
			if err != nil {
				return err
			}
			if len(removes) == 0 {
				// Nothing to remove, so nothing to confirm: unbinding twice is not an error.
				if g.structured() {
					return g.write(map[string]any{"serviceAccount": args[0], "changes": []any{}})
				}
				fmt.Fprintf(g.stdout, "%s is not bound: no role %s and no annotation of irsa's, nothing to remove\n", args[0], tb.RoleName)
				return nil
			}
			if err := g.confirm("unbind", removes, yes); err != nil {
				return err
			}
			release, _, err := g.lock(cmd.Context(), env, "unbind", false, nil, o.lockWait)
			defer release()
			if err != nil {
				return err
			}
			changes, err := env.BindingsStage().Unbind(cmd.Context(), tb.Binding)
			if err != nil {
				return err
			}
			if g.structured() {
				return g.write(map[string]any{"serviceAccount": args[0], "changes": nonNil(changes)})
			}
			writeChanges(g.stdout, "  ", changes)
			fmt.Fprintf(g.stdout, "%s is unbound\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&o.roleName, "role-name", "", "role name, if bind was given one")
	cmd.Flags().StringVar(&o.roleARN, "role-arn", "", "the existing role bind was given: irsa removes only its own trust statements from it")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation (required when stdin is not a terminal)")
	addLockFlag(cmd, &o.lockWait)
	addTargetFlags(cmd, g)
	return cmd
}

// annotateCommand is the kubectl command that sets every annotation bind would set on b's ServiceAccount (see
// bindings.Binding's annotations), for a bind without a cluster.
func annotateCommand(b config.Binding, roleARN string) string {
	sa := b.Ref()
	ns, name, _ := strings.Cut(sa, "/")
	args := []string{"kubectl", "-n", ns, "annotate", "serviceaccount", name, config.RoleARNAnnotation + "=" + roleARN}
	if b.Audience != "" {
		args = append(args, config.AudienceAnnotation+"="+b.Audience)
	}
	if b.STSRegionalEndpoints != nil {
		args = append(args, config.STSRegionalAnnotation+"="+strconv.FormatBool(*b.STSRegionalEndpoints))
	}
	if d, err := time.ParseDuration(b.TokenExpiration); err == nil && d > 0 {
		args = append(args, config.TokenExpirationAnnotation+"="+strconv.FormatInt(int64(d/time.Second), 10))
	}
	return strings.Join(args, " ")
}
