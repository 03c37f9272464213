package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// roleOptions are bind's flags that shape the role beyond its policies (eksctl's create iamserviceaccount options and
// the trust of several clusters).
type roleOptions struct {
	trustProviders      []string
	permissionsBoundary string
	tags                []string
	roleARN             string
}

func (o *roleOptions) add(cmd *cobra.Command) {
	cmd.Long += `

irsa.yaml stays the declarative source: bind never rewrites it. When the file given with -f does not list the binding
as given, bind says that it lives only in AWS and the cluster and prints the entry to add under bindings:.`
	f := cmd.Flags()
	f.StringArrayVar(&o.trustProviders, "trust-provider", nil, "another cluster's IAM OIDC provider the role trusts too: its ARN or issuer URL (repeatable; one trust statement each)")
	f.StringVar(&o.permissionsBoundary, "permissions-boundary", "", "managed policy ARN to set as the role's permissions boundary")
	f.StringArrayVar(&o.tags, "tag", nil, "role tag KEY=VALUE besides irsa's own (repeatable)")
	f.StringVar(&o.roleARN, "role-arn", "", "bind this existing role instead of making one: irsa adds only its own trust statements to it and never deletes it")
}

// apply sets the options on b.
func (o *roleOptions) apply(b *config.Binding) error {
	b.TrustProviders = o.trustProviders
	b.PermissionsBoundary = o.permissionsBoundary
	b.RoleARN = o.roleARN
	if b.RoleARN != "" && b.RoleName != "" {
		return fmt.Errorf("--role-name %q and --role-arn %q: give one of them (the role ARN names the role)", b.RoleName, b.RoleARN)
	}
	for _, kv := range o.tags {
		k, v, err := config.ParseTag(kv)
		if err != nil {
			return err
		}
		if _, dup := b.Tags[k]; dup {
			return fmt.Errorf("--tag %q: key %q given twice", kv, k)
		}
		if b.Tags == nil {
			b.Tags = map[string]string{}
		}
		b.Tags[k] = v
	}
	return nil
}

// fileBinding says how the binding bind makes relates to the config file in use. irsa.yaml is the declarative
// source, and bind does not rewrite it (that would drop the file's comments and layout); it says instead, when a file
// is in use and does not hold this binding as given, that the binding lives only in AWS and the cluster, and prints the
// entry to add.
type fileBinding struct {
	file string
	// state is "none" (no file), "same", "missing" or "different".
	state string
	entry config.Binding
}

func (g *globalOptions) fileBinding(cfg *config.Config, b config.Binding) fileBinding {
	if g.configFile == "" {
		return fileBinding{state: "none"}
	}
	fb := fileBinding{file: g.configFile, state: "missing", entry: b}
	i := slices.IndexFunc(cfg.Bindings, func(c config.Binding) bool {
		return c.Namespace == b.Namespace && c.ServiceAccount == b.ServiceAccount
	})
	if i >= 0 {
		have, _ := json.Marshal(cfg.Bindings[i])
		want, _ := json.Marshal(b)
		fb.state = "different"
		if string(have) == string(want) {
			fb.state = "same"
		}
	}
	return fb
}

func (fb fileBinding) result(r map[string]any) map[string]any {
	if fb.state != "none" {
		r["configFile"] = fb.file
		r["inConfigFile"] = fb.state == "same"
	}
	return r
}

func (fb fileBinding) note(w io.Writer) {
	entry, _ := yaml.Marshal([]config.Binding{fb.entry})
	switch fb.state {
	case "missing":
		fmt.Fprintf(w, "note: %s does not list this binding: it lives only in AWS and the cluster (irsa apply -f %s leaves it alone, irsa teardown removes it).\nTo keep %s the declarative source, add under bindings:\n%s", fb.file, fb.file, fb.file, indent(string(entry)))
	case "different":
		fmt.Fprintf(w, "note: %s binds this service account differently: the next irsa apply -f %s puts the file's binding back.\nTo keep this one, make the file's entry:\n%s", fb.file, fb.file, indent(string(entry)))
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}
