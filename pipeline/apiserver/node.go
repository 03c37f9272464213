package apiserver

import (
	"context"
	"io"
	"time"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver/node"
)

// What `irsa node` (internal/cli) uses, forwarded from package node, which holds the code that runs on a
// control-plane node.
const (
	NodePatchCommand    = node.PatchCommand
	NodeRestoreCommand  = node.RestoreCommand
	DefaultManifestPath = node.DefaultManifestPath
	DefaultStateDir     = node.DefaultStateDir
	DefaultPKIDir       = node.DefaultPKIDir
)

// NodeOptions configure the node subcommand: node.Options.
type NodeOptions = node.Options

// RunNode is the body of `irsa node patch-apiserver` and `irsa node restore-apiserver`: node.Run.
func RunNode(ctx context.Context, command string, opts NodeOptions, verifyTimeout time.Duration, out io.Writer) error {
	return node.Run(ctx, command, opts, verifyTimeout, out)
}
