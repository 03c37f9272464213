// Command image writes a container image tarball (docker-archive, which `ctr -n k8s.io images import`, `docker load`
// and `kind load image-archive` accept) holding one static binary on an empty base, without a daemon or a registry.
//
//	go run ./hack/image -ref ghcr.io/irsa-anywhere/irsa:v0.1.0 -binary _output/irsa -o _output/irsa-image.tar
//
// The binary lands at -path (default /usr/local/bin/<binary name>) and is the entrypoint unless -entrypoint says
// otherwise; the image runs as -user (default 65532:65532, nonroot). Extra files: -file SRC:DST, repeatable.
//
// A multi-platform image (the release's) takes one binary per architecture instead of -binary, and is written as
// an OCI image layout, pushed, or both:
//
//	go run ./hack/image -ref ghcr.io/irsa-anywhere/irsa:v0.2.0 -path /usr/local/bin/irsa \
//	  -platform amd64=dist/linux_amd64/irsa -platform arm64=dist/linux_arm64/irsa -layout _output/irsa-oci [-push]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/irsa-anywhere/irsa/internal/ociimage"
)

// DefaultUser is distroless' nonroot user and group.
const DefaultUser = "65532:65532"

// multi is the multi-platform mode: binaries by GOARCH, where the index goes.
type multi struct {
	binaries map[string]string
	layout   string
	push     bool
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// spec turns the command line into an image spec and the output path, and, with -platform, the multi-platform
// outputs.
func spec(args []string, stderr io.Writer) (ociimage.Spec, string, multi, error) {
	var m multi
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
	var platforms listFlag
	fs.Var(&platforms, "platform", "GOARCH=BINARY for a multi-platform image (linux), repeatable; replaces -binary")
	fs.StringVar(&m.layout, "layout", "", "with -platform: write the image index as an OCI image layout in this directory")
	fs.BoolVar(&m.push, "push", false, "with -platform: push the image index to -ref (credentials from docker login)")
	if err := fs.Parse(args); err != nil {
		return ociimage.Spec{}, "", m, err
	}
	if len(platforms) > 0 {
		m.binaries = map[string]string{}
		for _, p := range platforms {
			arch, bin, ok := strings.Cut(p, "=")
			if !ok || arch == "" || bin == "" {
				return ociimage.Spec{}, "", m, fmt.Errorf("-platform %q: want GOARCH=BINARY, such as arm64=dist/irsa", p)
			}
			m.binaries[arch] = bin
		}
		if *binary != "" || *out != "" {
			return ociimage.Spec{}, "", m, fmt.Errorf("-platform replaces -binary and -o: give -layout DIR and/or -push")
		}
		if m.layout == "" && !m.push {
			return ociimage.Spec{}, "", m, fmt.Errorf("-platform needs -layout DIR, -push or both")
		}
		*binary, *out = platforms[0][strings.Index(platforms[0], "=")+1:], "-"
	}
	if fs.NArg() > 0 {
		return ociimage.Spec{}, "", m, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var missing []string
	for name, v := range map[string]string{"-ref": *ref, "-binary": *binary, "-o": *out} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return ociimage.Spec{}, "", m, fmt.Errorf("missing %s (see -h)", strings.Join(missing, ", "))
	}
	if *dst == "" {
		*dst = path.Join("/usr/local/bin", filepath.Base(*binary))
	}
	if _, err := os.Stat(*binary); err != nil {
		return ociimage.Spec{}, "", m, fmt.Errorf("binary: %w", err)
	}
	s := ociimage.Spec{Ref: *ref, User: *user, Cmd: cmd, Env: env, Files: []ociimage.File{{Path: *dst, Source: *binary, Mode: 0o755}}}
	s.Entrypoint = entrypoint
	if len(s.Entrypoint) == 0 {
		s.Entrypoint = []string{*dst}
	}
	for _, f := range files {
		src, to, ok := strings.Cut(f, ":")
		if !ok || src == "" || to == "" {
			return ociimage.Spec{}, "", m, fmt.Errorf("-file %q: want SRC:DST", f)
		}
		s.Files = append(s.Files, ociimage.File{Path: to, Source: src})
	}
	if err := s.Validate(); err != nil {
		return ociimage.Spec{}, "", m, err
	}
	return s, *out, m, nil
}

func run(args []string, stderr io.Writer) error {
	s, out, m, err := spec(args, stderr)
	if err != nil {
		return err
	}
	if m.binaries != nil {
		return runMulti(s, m, stderr)
	}
	if err := ociimage.WriteTarball(out, s); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "image: wrote %s (%s, user %q)\n", out, s.Ref, s.User)
	return nil
}

// runMulti builds one image per architecture from s (each with its own binary at the same path) under one index.
func runMulti(s ociimage.Spec, m multi, stderr io.Writer) error {
	archs := make([]string, 0, len(m.binaries))
	for a := range m.binaries {
		archs = append(archs, a)
	}
	slices.Sort(archs)
	var specs []ociimage.Spec
	for _, a := range archs {
		if _, err := os.Stat(m.binaries[a]); err != nil {
			return fmt.Errorf("binary for %s: %w", a, err)
		}
		ps := s
		ps.Architecture = a
		ps.Files = append([]ociimage.File{{Path: s.Files[0].Path, Source: m.binaries[a], Mode: 0o755}}, s.Files[1:]...)
		specs = append(specs, ps)
	}
	idx, err := ociimage.Index(specs...)
	if err != nil {
		return err
	}
	if m.layout != "" {
		if err := ociimage.WriteLayout(m.layout, s.Ref, idx); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "image: wrote OCI layout %s (%s for linux/%s)\n", m.layout, s.Ref, strings.Join(archs, ", linux/"))
	}
	if m.push {
		digest, err := ociimage.Push(context.Background(), s.Ref, idx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "image: pushed %s@%s\n", s.Ref, digest)
		// The digest on stdout, for signing: cosign sign REF@DIGEST.
		fmt.Println(digest)
	}
	return nil
}
