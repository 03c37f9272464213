package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/internal/version"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// versionReport is `irsa version -o json`: a stable format.
type versionReport struct {
	version.Info
	// Images are the default image references of this build, before any mirror rewrite.
	Images config.ImageSet `json:"images"`
}

func currentVersion() versionReport {
	return versionReport{
		Info:   version.Get(),
		Images: config.ImageSet{Irsa: config.DefaultIrsaImage, Webhook: config.DefaultWebhookImage, Verify: config.DefaultVerifyImage},
	}
}

func (r versionReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "irsa %s\ncommit:  %s\ngo:      %s\n", r.Version, orUnknown(r.Commit, r.Modified), r.GoVersion)
	fmt.Fprintf(w, "images:\n  irsa     %s\n  webhook  %s\n  verify   %s\n", r.Images.Irsa, r.Images.Webhook, r.Images.Verify)
	if !r.Release() {
		fmt.Fprintf(w, "note: a development build; no registry has %s: build it with `make image`, load it into the cluster and pass --image, or install a release\n", r.Images.Irsa)
	}
}

func orUnknown(commit string, modified bool) string {
	switch {
	case commit == "":
		return "unknown"
	case modified:
		return commit + " (modified)"
	}
	return commit
}

// newVersionCommand is `irsa version`; setVersionFlag gives the root command `--version` with the same text.
func newVersionCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print irsa's version, commit, Go version and the default image references",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			r := currentVersion()
			if g.structured() {
				return g.write(r)
			}
			r.writeText(g.stdout)
			return nil
		},
	}
}

// setVersionFlag makes `irsa --version` print what `irsa version` prints.
func setVersionFlag(root *cobra.Command) {
	r := currentVersion()
	root.Version = r.Version
	var b strings.Builder
	r.writeText(&b)
	// The text has no template actions, so the template prints it as it is.
	root.SetVersionTemplate(b.String())
}
