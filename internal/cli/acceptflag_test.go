package cli

import (
	"io"
	"testing"
)

// --accept-issuer-replacement reaches the configuration the apiserver stage reads; without it the field stays false.
func TestAcceptIssuerReplacementFlag(t *testing.T) {
	t.Parallel()
	for args, want := range map[string]bool{"": false, "--accept-issuer-replacement": true} {
		root := NewRootCommand(io.Discard, io.Discard)
		cmd, _, err := root.Find([]string{"apply"})
		if err != nil {
			t.Fatal(err)
		}
		g := &globalOptions{stderr: io.Discard, flags: cmd.Flags()}
		if args != "" {
			if err := cmd.Flags().Parse([]string{args}); err != nil {
				t.Fatal(err)
			}
		}
		c, err := g.loadConfig()
		if err != nil {
			t.Fatal(err)
		}
		if c.AcceptIssuerReplacement != want {
			t.Errorf("%q: AcceptIssuerReplacement = %v, want %v", args, c.AcceptIssuerReplacement, want)
		}
	}
}
