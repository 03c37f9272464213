package cli

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/setup"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// completionTimeout bounds the cluster reads of a completion: a shell waits for them at every TAB.
const completionTimeout = 3 * time.Second

// addCompletions registers the completions of every command's arguments and flags: stage names (comma-separated,
// for --only), NAMESPACE/SERVICEACCOUNT read from the cluster the command's flags or irsa.yaml name, and the fixed
// values of -o, --cluster-type and --signing-key. `irsa completion bash|zsh|fish|powershell` prints the script.
func addCompletions(root *cobra.Command, g *globalOptions) {
	_ = root.RegisterFlagCompletionFunc("output", fixed(outputText, outputJSON, outputYAML))
	for _, name := range []string{"bind", "unbind", "doctor"} {
		if cmd, _, err := root.Find([]string{name}); err == nil && cmd.Name() == name {
			cmd.ValidArgsFunction = g.completeServiceAccount
		}
	}
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		if cmd.Flags().Lookup("only") != nil {
			_ = cmd.RegisterFlagCompletionFunc("only", completeStages)
		}
		if cmd.Flags().Lookup("cluster-type") != nil {
			_ = cmd.RegisterFlagCompletionFunc("cluster-type", fixed(config.ClusterTypes...))
		}
		if cmd.Flags().Lookup("signing-key") != nil {
			_ = cmd.RegisterFlagCompletionFunc("signing-key", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
				return []cobra.Completion{"cluster", "generate"}, cobra.ShellCompDirectiveDefault // or a key FILE
			})
		}
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(root)
}

func fixed(values ...string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeStages completes the last name of a comma-separated --only list, leaving out the names already listed.
func completeStages(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	i := strings.LastIndex(toComplete, ",")
	prefix, listed := toComplete[:i+1], strings.Split(toComplete[:max(i, 0)], ",")
	var out []cobra.Completion
	for _, n := range stage.Order {
		if !slices.Contains(listed, n) {
			out = append(out, prefix+n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// completeServiceAccount completes NAMESPACE/ with the cluster's namespaces, then NAMESPACE/NAME with the
// ServiceAccounts of that namespace, read with the kubeconfig the command would use. No cluster, or one that does not
// answer within completionTimeout, completes nothing (a completion never prints an error into the command line).
func (g *globalOptions) completeServiceAccount(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	g.flags = cmd.Flags()
	c, err := g.loadConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	cluster, err := setup.LoadCluster(c.Kubeconfig, c.Context)
	if err != nil || cluster == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	ns, name, found := strings.Cut(toComplete, "/")
	var out []cobra.Completion
	if !found {
		list, err := cluster.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		for _, n := range list.Items {
			if strings.HasPrefix(n.Name, ns) {
				out = append(out, n.Name+"/")
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
	list, err := cluster.Client.CoreV1().ServiceAccounts(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	for _, sa := range list.Items {
		if strings.HasPrefix(sa.Name, name) {
			out = append(out, ns+"/"+sa.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
