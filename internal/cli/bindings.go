package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/bindings"
)

func init() { extraCommands = append(extraCommands, newBindingsCommand) }

// ExitDisagree is the exit code of `irsa bindings` when a binding's ServiceAccount, role and trust do not agree (as
// plan exits 2 on drift).
const ExitDisagree = 2

func newBindingsCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bindings",
		Short: "List the service accounts bound to IAM roles, and whether annotation, role and trust agree",
		Long: `bindings lists every binding of the cluster: those irsa.yaml lists, the roles irsa made for the cluster (found
by their tags under its IAM path) and, with a cluster, the service accounts irsa annotated (which also finds roles bound
with --role-arn). For each it shows the role, its policies, the providers through which its trust policy admits the
service account's tokens (evaluated as STS does), and three checks: the service account is annotated with the role,
the role is as the binding wants it, and the trust policy admits the service account through this cluster's provider.
It exits 2 when a binding's checks do not all pass. It only reads.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			list, err := env.ListBindings(cmd.Context())
			if err != nil {
				return err
			}
			disagree := 0
			for _, l := range list {
				if !l.Agree {
					disagree++
				}
			}
			if g.structured() {
				if err := g.write(list); err != nil {
					return err
				}
			} else {
				writeBindings(g, list, disagree)
			}
			if disagree > 0 {
				return &exitError{code: ExitDisagree}
			}
			return nil
		},
	}
	addTargetFlags(cmd, g)
	return cmd
}

func writeBindings(g *globalOptions, list []bindings.Listed, disagree int) {
	w := g.stdout
	for _, l := range list {
		owner := "made by irsa"
		switch {
		case l.Role.OtherCluster != "":
			owner = "irsa cluster " + l.Role.OtherCluster + "'s: checked, never changed"
		case !l.Role.OwnedByIrsa:
			owner = "not irsa's: irsa manages only its trust statements"
		}
		fmt.Fprintf(w, "%s (%s)\n", l.ServiceAccount, strings.Join(l.Sources, ", "))
		fmt.Fprintf(w, "  role:      %s (%s)\n", l.Role.ARN, owner)
		policies := append(append([]string{}, l.Role.Policies...), prefixed("inline ", l.Role.InlinePolicies)...)
		if len(policies) == 0 {
			policies = []string{"none"}
		}
		fmt.Fprintf(w, "  policies:  %s\n", strings.Join(policies, ", "))
		if l.Role.PermissionsBoundary != "" {
			fmt.Fprintf(w, "  boundary:  %s\n", l.Role.PermissionsBoundary)
		}
		trusted := l.TrustedProviders
		if len(trusted) == 0 {
			trusted = []string{"none"}
		}
		fmt.Fprintf(w, "  trusts:    %s\n", strings.Join(trusted, ", "))
		fmt.Fprintf(w, "  service account: %s\n  role check:      %s\n  trust check:     %s\n", l.Checks.ServiceAccount, l.Checks.Role, l.Checks.Trust)
	}
	switch {
	case len(list) == 0:
		fmt.Fprintln(w, "no bindings")
	case disagree == 0:
		fmt.Fprintf(w, "%d binding(s), all agree\n", len(list))
	default:
		fmt.Fprintf(w, "%d binding(s), %d disagree (irsa apply repairs configured ones; irsa bind the others)\n", len(list), disagree)
	}
}

func prefixed(p string, s []string) []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		out = append(out, p+v)
	}
	return out
}
