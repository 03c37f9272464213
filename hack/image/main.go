// Command image writes a container image tarball (docker-archive, which `ctr -n k8s.io images import`, `docker load`
// and `kind load image-archive` accept) holding one static binary on an empty base, without a daemon or a registry.
//
//	go run ./hack/image -ref ghcr.io/irsa-anywhere/irsa:v0.1.0 -binary _output/irsa -o _output/irsa-image.tar
//
// The binary lands at -path (default /usr/local/bin/<binary name>) and is the entrypoint unless -entrypoint says
// otherwise; the image runs as -user (default 65532:65532, nonroot). Extra files: -file SRC:DST, repeatable.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/irsa-anywhere/irsa/internal/ociimage"
)

// DefaultUser is distroless' nonroot user and group.
const DefaultUser = "65532:65532"

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// spec turns the command line into an image spec and the output path.
func spec(args []string, stderr io.Writer) (ociimage.Spec, string, error) {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ref := fs.String("ref", "", "image name and tag, such as ghcr.io/irsa-anywhere/irsa:v0.1.0 (required)")
	binary := fs.String("binary", "", "static binary to put in the image (required)")
	dst := fs.String("path", "", "path of the binary in the image (default /usr/local/bin/<binary name>)")
	out := fs.String("o", "", "tarball to write (required)")
	user := fs.String("user", DefaultUser, "user[:group] the container runs as; empty for root")
	var entrypoint, cmd, files, env listFlag
	fs.Var(&entrypoint, "entrypoint", "entrypoint word, repeatable (default: the binary)")
	fs.Var(&cmd, "cmd", "default argument, repeatable")
	fs.Var(&files, "file", "extra file SRC:DST, repeatable")
	fs.Var(&env, "env", "environment variable NAME=VALUE, repeatable")
	if err := fs.Parse(args); err != nil {
		return ociimage.Spec{}, "", err
	}
	if fs.NArg() > 0 {
		return ociimage.Spec{}, "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var missing []string
	for name, v := range map[string]string{"-ref": *ref, "-binary": *binary, "-o": *out} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return ociimage.Spec{}, "", fmt.Errorf("missing %s (see -h)", strings.Join(missing, ", "))
	}
	if *dst == "" {
		*dst = path.Join("/usr/local/bin", filepath.Base(*binary))
	}
	if _, err := os.Stat(*binary); err != nil {
		return ociimage.Spec{}, "", fmt.Errorf("binary: %w", err)
	}
	s := ociimage.Spec{Ref: *ref, User: *user, Cmd: cmd, Env: env, Files: []ociimage.File{{Path: *dst, Source: *binary, Mode: 0o755}}}
	s.Entrypoint = entrypoint
	if len(s.Entrypoint) == 0 {
		s.Entrypoint = []string{*dst}
	}
	for _, f := range files {
		src, to, ok := strings.Cut(f, ":")
		if !ok || src == "" || to == "" {
			return ociimage.Spec{}, "", fmt.Errorf("-file %q: want SRC:DST", f)
		}
		s.Files = append(s.Files, ociimage.File{Path: to, Source: src})
	}
	if err := s.Validate(); err != nil {
		return ociimage.Spec{}, "", err
	}
	return s, *out, nil
}

func run(args []string, stderr io.Writer) error {
	s, out, err := spec(args, stderr)
	if err != nil {
		return err
	}
	if err := ociimage.WriteTarball(out, s); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "image: wrote %s (%s, user %q)\n", out, s.Ref, s.User)
	return nil
}
