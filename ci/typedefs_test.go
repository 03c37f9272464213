package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"dagger/irsa/fakeengine"
)

// functionDef is what the engine learns about one function when it loads the module.
type functionDef struct {
	description string
	cachePolicy string
	args        map[string]argDef
	argOrder    []string
	returns     string // the object type it returns (Irsa, File, ...), or the kind of a scalar
}

type argDef struct {
	description  string
	optional     bool
	kind         string // STRING_KIND, OBJECT_KIND, LIST_KIND, ...
	object       string // for objects: Secret, File, Directory, Service
	defaultValue string // JSON
	defaultPath  string
	ignore       []string
}

// moduleTypeDefs runs the pinned Dagger code generator's generate-typedefs on a copy of this
// module, against the fake engine, as the engine does when it loads the module, and returns the
// functions of Irsa (the constructor under "") and the names of the fields it exposes.
func moduleTypeDefs(t *testing.T) (map[string]functionDef, []string) {
	t.Helper()
	codegen := os.Getenv("IRSA_DAGGER_CODEGEN")
	introspection := os.Getenv("IRSA_DAGGER_INTROSPECTION")
	if codegen == "" || introspection == "" {
		t.Fatal("IRSA_DAGGER_CODEGEN and IRSA_DAGGER_INTROSPECTION are not set: run hack/dagger/check.sh (make dagger-check), which builds the code generator and the schema")
	}
	var cfg struct {
		EngineVersion string `json:"engineVersion"`
	}
	raw, err := os.ReadFile("../dagger.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("parse dagger.json: %v", err)
	}

	// The generator runs go get and writes files in the module: give it a copy.
	work := t.TempDir()
	for _, f := range []string{"main.go", "dagger.gen.go", "go.mod", "go.sum", "internal/dagger/dagger.gen.go"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("%v (hack/dagger/check.sh generates the module code first)", err)
		}
		dst := filepath.Join(work, "ci", f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goModCache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}

	engine := fakeengine.Start()
	engine.Invoke(fakeengine.Invocation{}, fakeengine.Answers{})
	cmd := exec.Command(codegen, "generate-typedefs", "--module-source-path", "./ci", "--module-name", "irsa",
		"--introspection-json-path", introspection, "--lib-version", cfg.EngineVersion, "--output", "typedefs.json")
	cmd.Dir = work
	// The generator runs `go get dagger.io/dagger@VERSION github.com/dagger/querybuilder`; the
	// module cache serves both (the proxy refuses querybuilder's version list).
	cmd.Env = append(os.Environ(),
		"GOPROXY=file://"+filepath.Join(strings.TrimSpace(string(goModCache)), "cache", "download"),
		"GOSUMDB=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("codegen generate-typedefs: %v\n%s", err, out)
	}
	// The generator writes --output relative to the module source directory.
	raw, err = os.ReadFile(filepath.Join(work, "ci", "typedefs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var moduleID string
	if err := json.Unmarshal(raw, &moduleID); err != nil {
		t.Fatalf("typedefs.json = %s, want a module ID: %v", raw, err)
	}

	module := resolve(t, moduleID)
	object := resolve(t, only(t, module, "withObject").Args["object"])
	if name := only(t, object, "withObject").Args["name"]; name != "Irsa" {
		t.Fatalf("module object = %v, want Irsa", name)
	}
	fns := map[string]functionDef{}
	var fields []string
	for _, c := range object {
		var fnID any
		switch c.Field {
		case "withField":
			fields = append(fields, c.Args["name"].(string))
			continue
		case "withFunction":
			fnID = c.Args["function"]
		case "withConstructor":
			fnID = c.Args["function"]
		default:
			continue
		}
		fn := resolve(t, fnID)
		decl := only(t, fn, "function")
		name, _ := decl.Args["name"].(string)
		if c.Field == "withConstructor" {
			name = ""
		}
		def := functionDef{args: map[string]argDef{}}
		for _, step := range resolve(t, decl.Args["returnType"]) {
			switch step.Field {
			case "withKind":
				def.returns, _ = step.Args["kind"].(string)
			case "withObject":
				def.returns, _ = step.Args["name"].(string)
			}
		}
		if d := fn.Find("withDescription"); len(d) > 0 {
			def.description, _ = d[len(d)-1].Args["description"].(string)
		}
		if p := fn.Find("withCachePolicy"); len(p) > 0 {
			def.cachePolicy, _ = p[len(p)-1].Args["policy"].(string)
		}
		for _, a := range fn.Find("withArg") {
			arg := argDef{}
			argName := a.Args["name"].(string)
			arg.description, _ = a.Args["description"].(string)
			arg.defaultValue, _ = a.Args["defaultValue"].(string)
			arg.defaultPath, _ = a.Args["defaultPath"].(string)
			arg.ignore = strings_(a.Args["ignore"])
			td := resolve(t, a.Args["typeDef"])
			for _, step := range td {
				switch step.Field {
				case "withKind":
					arg.kind, _ = step.Args["kind"].(string)
				case "withOptional":
					arg.optional, _ = step.Args["optional"].(bool)
				case "withObject":
					arg.kind = "OBJECT_KIND"
					arg.object, _ = step.Args["name"].(string)
				case "withListOf":
					arg.kind = "LIST_KIND"
				}
			}
			def.args[argName] = arg
			def.argOrder = append(def.argOrder, argName)
		}
		fns[name] = def
	}
	return fns, fields
}

var (
	typeDefsOnce sync.Once
	typeDefs     map[string]functionDef
	typeFields   []string
)

// cachedTypeDefs runs the generator once for all tests that need the type definitions.
func cachedTypeDefs(t *testing.T) map[string]functionDef {
	t.Helper()
	typeDefsOnce.Do(func() { typeDefs, typeFields = moduleTypeDefs(t) })
	if typeDefs == nil {
		t.Fatal("the type definitions could not be generated (see the first test that asked for them)")
	}
	return typeDefs
}

// Credentials: the only arguments that may be secrets, and always are.
var secretArgs = []string{"kubeconfig", "awsAccessKeyID", "awsSecretAccessKey", "awsSessionToken", "awsConfig", "awsCredentials"}

func TestTypeDefs(t *testing.T) {
	fns := cachedTypeDefs(t)

	var names []string
	for n := range fns {
		names = append(names, n)
	}
	sort.Strings(names)
	withFunctions := []string{"WithAWSConfig", "WithAWSCredentials", "WithAWSEndpoint", "WithConfig", "WithImages", "WithKubeAPI", "WithKubeconfig"}
	sideEffects := []string{"Plan", "Setup", "Status", "Verify", "Doctor", "Bind", "Unbind", "Teardown"}
	want := append([]string{"", "Build", "Container", "Test", "Lint"}, sideEffects...)
	want = append(want, withFunctions...)
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Fatalf("functions = %q, want %q", names, want)
	}
	// What every command shares is held by the object, not exposed as fields.
	if !slices.Equal(typeFields, []string{"Source"}) {
		t.Errorf("object fields = %q, want only Source", typeFields)
	}

	constructor := fns[""]
	for _, name := range names {
		fn := fns[name]
		if name != "" && fn.description == "" {
			t.Errorf("%s has no description", name)
		}
		wantPolicy := ""
		if slices.Contains(sideEffects, name) {
			wantPolicy = "Never"
		}
		if fn.cachePolicy != wantPolicy {
			t.Errorf("%s cache policy = %q, want %q", name, fn.cachePolicy, wantPolicy)
		}
		holdsState := name == "" || slices.Contains(withFunctions, name)
		for argName, arg := range fn.args {
			if arg.description == "" {
				t.Errorf("%s(%s) has no description", name, argName)
			}
			if arg.object == "Secret" && (!holdsState || !slices.Contains(secretArgs, argName)) {
				t.Errorf("%s(%s) is an unexpected secret", name, argName)
			}
			// Connection arguments are given once, to the constructor or a With* function.
			if _, shared := constructor.args[argName]; shared && !holdsState {
				t.Errorf("%s(%s) repeats a constructor argument", name, argName)
			}
		}
		if !holdsState {
			continue
		}
		if fn.returns != "Irsa" {
			t.Errorf("%s returns %q, want Irsa", name, fn.returns)
		}
		// A With* argument is the constructor's argument of the same name and type, so the
		// CLI spells it the same way in both places.
		for argName, arg := range fn.args {
			if c, ok := constructor.args[argName]; !ok || c.kind != arg.kind || c.object != arg.object {
				t.Errorf("%s(%s) = %+v, want the constructor's argument %+v", name, argName, arg, c)
			}
		}
	}

	// Every credential is an optional secret, never a string.
	for _, secret := range secretArgs {
		if a := constructor.args[secret]; a.object != "Secret" || !a.optional {
			t.Errorf("constructor(%s) = %+v, want an optional Secret", secret, a)
		}
	}
	for arg, object := range map[string]string{"config": "File", "caBundle": "File", "kubeAPI": "Service"} {
		if a := constructor.args[arg]; a.object != object || !a.optional {
			t.Errorf("constructor(%s) = %+v, want an optional %s", arg, a, object)
		}
	}
	for _, s := range []string{"clusterName", "clusterType", "region", "bucket", "issuerURL", "awsEndpointURL", "kubeContext", "awsProfile", "image", "webhookImage", "verifyImage", "format"} {
		if a := constructor.args[s]; a.kind != "STRING_KIND" || !a.optional {
			t.Errorf("constructor(%s) = %+v, want an optional string", s, a)
		}
	}
	if a := constructor.args["source"]; a.object != "Directory" || a.defaultPath != "/" || !slices.Equal(a.ignore, []string{".git", "bin", "_output", "artifacts"}) {
		t.Errorf("constructor source = %+v, want a Directory defaulting to / without .git, bin, _output, artifacts", a)
	}
	for _, name := range []string{"WithImages", "WithAWSConfig"} {
		for argName, a := range fns[name].args {
			if !a.optional {
				t.Errorf("%s(%s) is required, want optional", name, argName)
			}
		}
	}

	for _, name := range []string{"Plan", "Setup", "Status", "Teardown"} {
		if a := fns[name].args["only"]; a.kind != "LIST_KIND" || !a.optional {
			t.Errorf("%s(only) = %+v, want an optional list", name, a)
		}
	}
	if a := fns["Setup"].args["verify"]; a.kind != "BOOLEAN_KIND" || a.defaultValue != "true" {
		t.Errorf("Setup(verify) = %+v, want a boolean defaulting to true", a)
	}
	for _, name := range []string{"Bind", "Unbind"} {
		if a := fns[name].args["serviceAccount"]; a.kind != "STRING_KIND" || a.optional {
			t.Errorf("%s(serviceAccount) = %+v, want a required string", name, a)
		}
	}
	if a := fns["Test"].args["packages"]; a.defaultValue != `["./..."]` {
		t.Errorf("Test(packages) default = %q, want [\"./...\"]", a.defaultValue)
	}
}

// cliName is how the dagger CLI spells a function or argument name: the engine lower-camel-cases
// the Go name and the CLI kebab-cases that (github.com/iancoleman/strcase), so an acronym becomes
// one lower-case word: awsAccessKeyID is --aws-access-key-id.
func cliName(goName string) string {
	var b strings.Builder
	r := []rune(goName)
	for i, c := range r {
		upper := c >= 'A' && c <= 'Z'
		if upper && i > 0 {
			prevLower := r[i-1] >= 'a' && r[i-1] <= 'z'
			nextLower := i+1 < len(r) && r[i+1] >= 'a' && r[i+1] <= 'z'
			prevUpper := r[i-1] >= 'A' && r[i-1] <= 'Z'
			if prevLower || prevUpper && nextLower {
				b.WriteByte('-')
			}
		}
		b.WriteString(strings.ToLower(string(c)))
	}
	return b.String()
}

func TestCLIName(t *testing.T) {
	t.Parallel()
	// Expected values computed with strcase.ToKebab(strcase.ToLowerCamel(name)) from the engine's
	// github.com/iancoleman/strcase.
	for name, want := range map[string]string{
		"awsAccessKeyID": "aws-access-key-id", "kubeAPI": "kube-api", "issuerURL": "issuer-url",
		"policyARN": "policy-arn", "awsEndpointURL": "aws-endpoint-url", "serviceAccount": "service-account",
		"kubeconfig": "kubeconfig", "Setup": "setup",
	} {
		if got := cliName(name); got != want {
			t.Errorf("cliName(%q) = %q, want %q", name, got, want)
		}
	}
}

// readmeCall is one `dagger call [--constructor-flag...] FUNCTION [--flag...] [FUNCTION ...]`
// example: the constructor's flags, then each function of the chain with its flags.
type readmeCall struct {
	command string
	chain   []readmeStep // chain[0] is the constructor, function ""
}

type readmeStep struct {
	function string
	flags    []string
}

// readmeCalls returns every `dagger call` in ci/README.md: shell lines joined at backslashes, and
// the folded args of the GitHub Actions example.
func readmeCalls(t *testing.T) []readmeCall {
	t.Helper()
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var commands []string
	lines := strings.Split(string(raw), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(line, "dagger "):
			for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
				i++
				line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(lines[i])
			}
			commands = append(commands, line)
		case strings.HasPrefix(line, "args: >-"):
			indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
			cmd := "dagger call"
			for i+1 < len(lines) && len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > indent && strings.TrimSpace(lines[i+1]) != "" {
				i++
				cmd += " " + strings.TrimSpace(lines[i])
			}
			commands = append(commands, cmd)
		}
	}
	var calls []readmeCall
	for _, cmd := range commands {
		fields := strings.Fields(cmd)
		at := slices.Index(fields, "call")
		if at < 0 {
			continue
		}
		call := readmeCall{command: cmd, chain: []readmeStep{{}}}
		for _, f := range fields[at+1:] {
			step := &call.chain[len(call.chain)-1]
			if strings.HasPrefix(f, "--") {
				step.flags = append(step.flags, strings.SplitN(strings.TrimPrefix(f, "--"), "=", 2)[0])
				continue
			}
			call.chain = append(call.chain, readmeStep{function: f})
		}
		calls = append(calls, call)
	}
	return calls
}

func TestReadmeCallsUseRealFlags(t *testing.T) {
	fns := cachedTypeDefs(t)
	byCLIName := map[string]functionDef{}
	for name, fn := range fns {
		if name != "" {
			byCLIName[cliName(name)] = fn
		}
	}
	calls := readmeCalls(t)
	if len(calls) < 10 {
		t.Fatalf("found %d dagger calls in README.md, want the examples (at least 10)", len(calls))
	}
	for _, c := range calls {
		if len(c.chain) < 2 {
			t.Errorf("README.md: %q calls no function", c.command)
			continue
		}
		for i, step := range c.chain {
			fn, ok := fns[""], true
			if i > 0 {
				fn, ok = byCLIName[step.function]
			}
			if !ok {
				t.Errorf("README.md: %q calls %q, which the module does not have", c.command, step.function)
				break
			}
			args := map[string]bool{}
			for a := range fn.args {
				args[cliName(a)] = true
			}
			for _, f := range step.flags {
				if !args[f] {
					t.Errorf("README.md: %q passes --%s to %q, which has no such argument", c.command, f, step.function)
				}
			}
			if fn.returns != "Irsa" {
				break // the rest of the chain calls the result, such as `build export --path=...`
			}
		}
	}
}

// Every function is in README.md's table, so a new one is documented.
func TestReadmeListsEveryFunction(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range cachedTypeDefs(t) {
		if name != "" && !strings.Contains(string(raw), "| `"+cliName(name)+"`") {
			t.Errorf("README.md has no table row for `%s`", cliName(name))
		}
	}
}
