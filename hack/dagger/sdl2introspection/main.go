// Command sdl2introspection converts the Dagger core schema, shipped as GraphQL SDL in the
// github.com/dagger/dagger module (docs/docs-graphql/schema.graphqls), into the introspection JSON
// that `codegen --introspection-json-path` reads. It lets hack/dagger/check.sh generate the irsa
// Dagger module's code without a running engine, which these machines cannot start.
//
// The output is the module's view of the API as an engine of the given version serves it: Host and
// Engine* types are dropped (a module cannot reach them), and engines before v0.22.0 also serve one
// legacy FooID scalar and a loadFooFromID root field per object that has an ID.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
)

func main() {
	in := flag.String("schema", "", "path to the Dagger core schema as SDL (docs/docs-graphql/schema.graphqls)")
	out := flag.String("out", "", "path of the introspection JSON to write")
	version := flag.String("schema-version", "", "engine version the schema belongs to, for example v0.21.8")
	flag.Parse()
	if err := run(*in, *out, *version); err != nil {
		fmt.Fprintln(os.Stderr, "sdl2introspection:", err)
		os.Exit(1)
	}
}

func run(in, out, version string) error {
	if in == "" || out == "" || version == "" {
		return fmt.Errorf("-schema, -out and -schema-version are required")
	}
	sdl, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("read schema: %w", err)
	}
	resp, err := convert(in, string(sdl), version)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(resp, "", "  ")
	if err != nil {
		return fmt.Errorf("encode introspection of %q: %w", in, err)
	}
	if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write introspection: %w", err)
	}
	return nil
}
