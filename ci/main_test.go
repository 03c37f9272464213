package main

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"dagger/irsa/fakeengine"
)

// The generated client and the fake engine are one per process, so these tests run one at a time.

const (
	sourceID = "fake-dir:source"
	report   = "irsa report\n"
)

// Secret IDs as the engine would pass them for --kubeconfig=file:..., --aws-access-key-id=env:...
const (
	kubeconfigID      = "fake-secret:kubeconfig"
	accessKeyID       = "fake-secret:aws-access-key-id"
	secretAccessKeyID = "fake-secret:aws-secret-access-key"
	sessionTokenID    = "fake-secret:aws-session-token"
	awsConfigID       = "fake-secret:aws-config"
	awsCredentialsID  = "fake-secret:aws-credentials"
)

var allSecretIDs = []string{kubeconfigID, accessKeyID, secretAccessKeyID, sessionTokenID, awsConfigID, awsCredentialsID}

// callFunction calls fn the way `dagger call` does: the engine presents the call and its JSON
// arguments, and the module's generated dispatcher reads them, invokes the function and stores
// the result. It returns the stored JSON (nil if the function failed), the stored error's chain,
// and the scalar fields the module asked the engine for.
func callFunction(t *testing.T, fn string, args map[string]any, answers fakeengine.Answers) (*string, fakeengine.Chain, []fakeengine.Leaf) {
	t.Helper()
	engine := fakeengine.Start()
	inv := fakeengine.Invocation{
		ParentName: "Irsa",
		Name:       fn,
		Parent:     `{"Source":"` + sourceID + `"}`,
		Args:       map[string]string{},
	}
	for name, v := range args {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encode argument %s: %v", name, err)
		}
		inv.Args[name] = string(raw)
	}
	engine.Invoke(inv, answers)
	err := dispatch(context.Background())
	returned, failure := engine.Returned()
	if (err == nil) != (failure == nil) {
		t.Fatalf("dispatch of %s returned %v but stored error chain %v", fn, err, failure)
	}
	return returned, failure, engine.Leaves()
}

// stdoutChain returns the chain of the only stdout query the module made.
func stdoutChain(t *testing.T, leaves []fakeengine.Leaf) fakeengine.Chain {
	t.Helper()
	var chains []fakeengine.Chain
	for _, l := range leaves {
		if l.Field == "stdout" {
			chains = append(chains, l.Chain)
		}
	}
	if len(chains) != 1 {
		t.Fatalf("got %d stdout queries, want 1: %v", len(chains), leaves)
	}
	return chains[0]
}

func resolve(t *testing.T, id any) fakeengine.Chain {
	t.Helper()
	s, ok := id.(string)
	if !ok {
		t.Fatalf("ID %v is a %T, want a string", id, id)
	}
	chain, ok := fakeengine.Start().Resolve(s)
	if !ok {
		t.Fatalf("ID %q was never handed out by the engine", s)
	}
	return chain
}

func only(t *testing.T, chain fakeengine.Chain, field string) fakeengine.Call {
	t.Helper()
	calls := chain.Find(field)
	if len(calls) != 1 {
		t.Fatalf("got %d %s calls, want 1, in %s", len(calls), field, chain)
	}
	return calls[0]
}

func strings_(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// assertGoContainer checks the pinned Go image, the named caches and the repository at /src.
func assertGoContainer(t *testing.T, chain fakeengine.Chain) {
	t.Helper()
	if got := only(t, chain, "from").Args["address"]; got != goImage {
		t.Errorf("builder image = %v, want %s", got, goImage)
	}
	caches := map[string]string{}
	for _, c := range chain.Find("withMountedCache") {
		vol := resolve(t, c.Args["cache"])
		caches[c.Args["path"].(string)] = only(t, vol, "cacheVolume").Args["key"].(string)
	}
	if want := map[string]string{"/go/pkg/mod": "irsa-go-mod", "/root/.cache/go-build": "irsa-go-build"}; !subset(want, caches) {
		t.Errorf("cache volumes = %v, want at least %v", caches, want)
	}
	dir := only(t, chain, "withDirectory")
	if dir.Args["path"] != "/src" || dir.Args["source"] != sourceID {
		t.Errorf("repository mount = %v, want /src from %s", dir.Args, sourceID)
	}
}

func subset(want, got map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// assertBuild checks the chain of the File that Build returns.
func assertBuild(t *testing.T, chain fakeengine.Chain) {
	t.Helper()
	assertGoContainer(t, chain)
	env := envVariables(chain)
	if env["CGO_ENABLED"] != "0" {
		t.Errorf("CGO_ENABLED = %q, want 0", env["CGO_ENABLED"])
	}
	exec := strings_(only(t, chain, "withExec").Args["args"])
	if want := []string{"go", "build", "-trimpath", "-ldflags=-s -w", "-o", "/out/irsa", "./cmd/irsa"}; !slices.Equal(exec, want) {
		t.Errorf("build command = %q, want %q", exec, want)
	}
	if last := chain[len(chain)-1]; last.Field != "file" || last.Args["path"] != "/out/irsa" {
		t.Errorf("build result = %v, want file(/out/irsa)", last)
	}
}

// assertImage checks the irsa image up to its entrypoint.
func assertImage(t *testing.T, chain fakeengine.Chain) {
	t.Helper()
	if chain[0].Field != "container" {
		t.Fatalf("pipeline starts with %s, want container: %s", chain[0].Field, chain)
	}
	if got := only(t, chain, "from").Args["address"]; got != runtimeImage {
		t.Errorf("base image = %v, want %s", got, runtimeImage)
	}
	bin := only(t, chain, "withFile")
	if bin.Args["path"] != binPath || bin.Args["permissions"] != int64(0o755) {
		t.Errorf("binary = %v, want %s mode 0755", bin.Args, binPath)
	}
	assertBuild(t, resolve(t, bin.Args["source"]))
	if got := only(t, chain, "withUser").Args["name"]; got != nonroot {
		t.Errorf("user = %v, want %s", got, nonroot)
	}
	if got := strings_(only(t, chain, "withEntrypoint").Args["args"]); !slices.Equal(got, []string{binPath}) {
		t.Errorf("entrypoint = %q, want %s", got, binPath)
	}
}

func envVariables(chain fakeengine.Chain) map[string]string {
	env := map[string]string{}
	for _, c := range chain.Find("withEnvVariable") {
		env[c.Args["name"].(string)] = c.Args["value"].(string)
	}
	return env
}

// run is what one irsa run must look like.
type run struct {
	argv           []string
	secretFiles    map[string]string // path -> secret ID
	secretVars     map[string]string // variable -> secret ID
	env            map[string]string // besides the run ID
	files          map[string]string // path -> file ID
	serviceBinding string            // service ID bound as kube-api
}

func assertRun(t *testing.T, chain fakeengine.Chain, want run) {
	t.Helper()
	assertImage(t, chain)

	if got := strings_(only(t, chain, "withExec").Args["args"]); !slices.Equal(got, want.argv) {
		t.Errorf("irsa command line:\n got %q\nwant %q", got, want.argv)
	}
	if last := chain[len(chain)-1]; last.Field != "withExec" {
		t.Errorf("last step = %s, want withExec", last.Field)
	}

	secretFiles := map[string]string{}
	for _, c := range chain.Find("withMountedSecret") {
		secretFiles[c.Args["path"].(string)] = c.Args["source"].(string)
		if c.Args["owner"] != nonroot {
			t.Errorf("secret %s owner = %v, want %s (the image's user, mode 0400)", c.Args["path"], c.Args["owner"], nonroot)
		}
		if _, set := c.Args["mode"]; set {
			t.Errorf("secret %s mode = %v, want the default 0400", c.Args["path"], c.Args["mode"])
		}
	}
	if !reflect.DeepEqual(secretFiles, orEmpty(want.secretFiles)) {
		t.Errorf("secret files = %v, want %v", secretFiles, want.secretFiles)
	}

	secretVars := map[string]string{}
	for _, c := range chain.Find("withSecretVariable") {
		secretVars[c.Args["name"].(string)] = c.Args["secret"].(string)
	}
	if !reflect.DeepEqual(secretVars, orEmpty(want.secretVars)) {
		t.Errorf("secret variables = %v, want %v", secretVars, want.secretVars)
	}

	env := envVariables(chain)
	if env[runIDVariable] == "" {
		t.Errorf("%s is not set: a repeated run would be answered from the cache", runIDVariable)
	}
	delete(env, runIDVariable)
	if !reflect.DeepEqual(env, orEmpty(want.env)) {
		t.Errorf("environment = %v, want %v", env, want.env)
	}

	files := map[string]string{}
	for _, c := range chain.Find("withMountedFile") {
		files[c.Args["path"].(string)] = c.Args["source"].(string)
		if c.Args["owner"] != nonroot {
			t.Errorf("file %s owner = %v, want %s, so irsa can read a 0600 file", c.Args["path"], c.Args["owner"], nonroot)
		}
	}
	if !reflect.DeepEqual(files, orEmpty(want.files)) {
		t.Errorf("mounted files = %v, want %v", files, want.files)
	}

	bindings := chain.Find("withServiceBinding")
	switch {
	case want.serviceBinding == "" && len(bindings) != 0:
		t.Errorf("service bindings = %v, want none", bindings)
	case want.serviceBinding != "" && (len(bindings) != 1 || bindings[0].Args["alias"] != kubeAPIAlias || bindings[0].Args["service"] != want.serviceBinding):
		t.Errorf("service bindings = %v, want %s bound as %s", bindings, want.serviceBinding, kubeAPIAlias)
	}

	// A secret ID may appear only where the engine treats it as a secret.
	for _, c := range chain {
		for name, v := range c.Args {
			for _, id := range allSecretIDs {
				if !strings.Contains(toJSON(v), id) {
					continue
				}
				if c.Field == "withMountedSecret" && name == "source" || c.Field == "withSecretVariable" && name == "secret" {
					continue
				}
				t.Errorf("secret %s passed to %s(%s:)", id, c.Field, name)
			}
		}
	}
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// allAccess is every credential and connection argument the cluster functions take.
func allAccess() map[string]any {
	return map[string]any{
		"kubeconfig":         kubeconfigID,
		"kubeContext":        "kind-irsa",
		"kubeAPI":            "fake-service:kube-api",
		"awsAccessKeyID":     accessKeyID,
		"awsSecretAccessKey": secretAccessKeyID,
		"awsSessionToken":    sessionTokenID,
		"awsConfig":          awsConfigID,
		"awsCredentials":     awsCredentialsID,
		"awsProfile":         "ci",
		"region":             "eu-west-1",
		"clusterName":        "dev",
		"bucket":             "dev-irsa",
		"issuerURL":          "https://dev-irsa.s3.eu-west-1.amazonaws.com",
		"awsEndpointURL":     "http://moto:5000",
		"clusterType":        "kind",
		"config":             "fake-file:irsa.yaml",
		"format":             "json",
	}
}

func with(base map[string]any, extra map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// allAccessArgv is the global flags allAccess turns into, in the order the module writes them.
var allAccessArgv = []string{
	binPath,
	"--config", "/etc/irsa/irsa.yaml",
	"--kubeconfig", "/run/secrets/irsa/kubeconfig",
	"--context", "kind-irsa",
	"--cluster-name", "dev",
	"--region", "eu-west-1",
	"--bucket", "dev-irsa",
	"--issuer-url", "https://dev-irsa.s3.eu-west-1.amazonaws.com",
	"--aws-endpoint-url", "http://moto:5000",
	"--cluster-type", "kind",
	"-o", "json",
}

var allAccessRun = run{
	secretFiles: map[string]string{
		"/run/secrets/irsa/kubeconfig":      kubeconfigID,
		"/run/secrets/irsa/aws-config":      awsConfigID,
		"/run/secrets/irsa/aws-credentials": awsCredentialsID,
	},
	secretVars: map[string]string{
		"AWS_ACCESS_KEY_ID":     accessKeyID,
		"AWS_SECRET_ACCESS_KEY": secretAccessKeyID,
		"AWS_SESSION_TOKEN":     sessionTokenID,
	},
	env: map[string]string{
		"AWS_CONFIG_FILE":             "/run/secrets/irsa/aws-config",
		"AWS_SHARED_CREDENTIALS_FILE": "/run/secrets/irsa/aws-credentials",
		"AWS_PROFILE":                 "ci",
	},
	files:          map[string]string{"/etc/irsa/irsa.yaml": "fake-file:irsa.yaml"},
	serviceBinding: "fake-service:kube-api",
}

func argv(tail ...string) []string {
	return append(slices.Clone(allAccessArgv), tail...)
}

func withArgv(r run, argv []string) run {
	r.argv = argv
	return r
}

func TestClusterFunctions(t *testing.T) {
	minimal := run{
		argv:        []string{binPath, "--kubeconfig", "/run/secrets/irsa/kubeconfig", "--region", "us-east-1", "apply"},
		secretFiles: map[string]string{"/run/secrets/irsa/kubeconfig": kubeconfigID},
		secretVars:  map[string]string{"AWS_ACCESS_KEY_ID": accessKeyID, "AWS_SECRET_ACCESS_KEY": secretAccessKeyID},
	}
	bindRun := withArgv(allAccessRun, argv("bind", "apps/uploader",
		"--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
		"--policy-arn", "arn:aws:iam::123456789012:policy/extra",
		"--inline-policy", "/etc/irsa/inline-policy.json",
		"--role-name", "uploader"))
	bindRun.files = map[string]string{"/etc/irsa/irsa.yaml": "fake-file:irsa.yaml", "/etc/irsa/inline-policy.json": "fake-file:policy.json"}

	for _, tc := range []struct {
		name string
		fn   string
		args map[string]any
		want run
	}{
		{"setup with keys only", "Setup", map[string]any{
			"kubeconfig": kubeconfigID, "awsAccessKeyID": accessKeyID, "awsSecretAccessKey": secretAccessKeyID, "region": "us-east-1",
		}, minimal},
		{"setup", "Setup", with(allAccess(), map[string]any{"only": []string{"keys", "issuer"}}),
			withArgv(allAccessRun, argv("--only", "keys,issuer", "apply"))},
		{"plan", "Plan", with(allAccess(), map[string]any{"only": []string{"webhook"}}),
			withArgv(allAccessRun, argv("--only", "webhook", "plan"))},
		{"status", "Status", allAccess(), withArgv(allAccessRun, argv("status"))},
		{"teardown", "Teardown", with(allAccess(), map[string]any{"only": []string{"bindings", "verify"}}),
			withArgv(allAccessRun, argv("--only", "bindings,verify", "teardown"))},
		{"verify", "Verify", allAccess(), withArgv(allAccessRun, argv("verify"))},
		{"verify keep", "Verify", with(allAccess(), map[string]any{"keep": true}), withArgv(allAccessRun, argv("verify", "--keep"))},
		{"doctor", "Doctor", allAccess(), withArgv(allAccessRun, argv("doctor"))},
		{"doctor service account live", "Doctor", with(allAccess(), map[string]any{"serviceAccount": "apps/uploader", "live": true}),
			withArgv(allAccessRun, argv("doctor", "apps/uploader", "--live"))},
		{"bind", "Bind", with(allAccess(), map[string]any{
			"serviceAccount": "apps/uploader",
			"policyARN":      []string{"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess", "arn:aws:iam::123456789012:policy/extra"},
			"inlinePolicy":   "fake-file:policy.json",
			"roleName":       "uploader",
		}), bindRun},
		{"unbind", "Unbind", with(allAccess(), map[string]any{"serviceAccount": "apps/uploader"}),
			withArgv(allAccessRun, argv("unbind", "apps/uploader"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			returned, failure, leaves := callFunction(t, tc.fn, tc.args, fakeengine.Answers{Stdout: report})
			if failure != nil {
				t.Fatalf("%s failed: %s", tc.fn, failure)
			}
			if returned == nil || *returned != toJSON(report) {
				t.Errorf("%s returned %v, want the report %q", tc.fn, returned, report)
			}
			assertRun(t, stdoutChain(t, leaves), tc.want)
		})
	}
}

func TestClusterFunctionFailsWithIrsaError(t *testing.T) {
	const msg = `process "/usr/local/bin/irsa apply" did not complete successfully: exit code: 1`
	returned, failure, _ := callFunction(t, "Setup", map[string]any{"kubeconfig": kubeconfigID}, fakeengine.Answers{ExecError: msg})
	if returned != nil {
		t.Errorf("Setup stored result %q after irsa failed", *returned)
	}
	if got := only(t, failure, "error").Args["message"]; !strings.Contains(got.(string), msg) {
		t.Errorf("stored error = %q, want it to contain %q", got, msg)
	}
}

func TestBuild(t *testing.T) {
	returned, failure, _ := callFunction(t, "Build", nil, fakeengine.Answers{})
	if failure != nil || returned == nil {
		t.Fatalf("Build failed: %s", failure)
	}
	var id string
	if err := json.Unmarshal([]byte(*returned), &id); err != nil {
		t.Fatalf("Build returned %s, want a File ID: %v", *returned, err)
	}
	assertBuild(t, resolve(t, id))
}

func TestContainer(t *testing.T) {
	returned, failure, _ := callFunction(t, "Container", nil, fakeengine.Answers{})
	if failure != nil || returned == nil {
		t.Fatalf("Container failed: %s", failure)
	}
	var id string
	if err := json.Unmarshal([]byte(*returned), &id); err != nil {
		t.Fatalf("Container returned %s, want a Container ID: %v", *returned, err)
	}
	chain := resolve(t, id)
	assertImage(t, chain)
	if execs := chain.Find("withExec"); len(execs) != 0 {
		t.Errorf("image runs %v, want no command", execs)
	}
}

func TestConstructorTakesSource(t *testing.T) {
	returned, failure, _ := callFunction(t, "", map[string]any{"source": "fake-dir:other"}, fakeengine.Answers{})
	if failure != nil || returned == nil {
		t.Fatalf("constructor failed: %s", failure)
	}
	if want := `{"Source":"fake-dir:other"}`; *returned != want {
		t.Errorf("constructor returned %s, want %s", *returned, want)
	}
}

func TestTest(t *testing.T) {
	for _, tc := range []struct {
		name string
		args map[string]any
		want []string
	}{
		// The engine passes the +default value when the caller leaves packages out.
		{"defaults", map[string]any{"packages": []string{"./..."}}, []string{"go", "test", "-count=1", "./..."}},
		{"run", map[string]any{"packages": []string{"./pipeline/...", "./cmd/..."}, "run": "TestApply"},
			[]string{"go", "test", "-count=1", "-run", "TestApply", "./pipeline/...", "./cmd/..."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			returned, failure, leaves := callFunction(t, "Test", tc.args, fakeengine.Answers{Stdout: "ok\n"})
			if failure != nil || returned == nil || *returned != toJSON("ok\n") {
				t.Fatalf("Test returned %v, %s", returned, failure)
			}
			chain := stdoutChain(t, leaves)
			assertGoContainer(t, chain)
			execs := chain.Find("withExec")
			if got := strings_(execs[len(execs)-1].Args["args"]); !slices.Equal(got, tc.want) {
				t.Errorf("test command = %q, want %q", got, tc.want)
			}
			// Installing moto comes before the source so that a source edit does not redo it.
			var steps []string
			for _, c := range chain {
				switch c.Field {
				case "withExec":
					steps = append(steps, strings.Join(strings_(c.Args["args"]), " "))
				case "withDirectory":
					steps = append(steps, "<source>")
				}
			}
			wantSteps := []string{
				"apt-get update",
				"apt-get install -y --no-install-recommends python3-venv",
				"python3 -m venv /opt/moto",
				"/opt/moto/bin/pip install moto[server]==" + motoVersion,
				"<source>",
				"hack/build-kubernetes.sh",
				strings.Join(tc.want, " "),
			}
			if !slices.Equal(steps, wantSteps) {
				t.Errorf("steps:\n got %q\nwant %q", steps, wantSteps)
			}
			env := envVariables(chain)
			if env["MOTO_SERVER"] != "/opt/moto/bin/moto_server" || env["IRSA_CACHE"] != "/root/.cache/irsa" {
				t.Errorf("environment = %v, want MOTO_SERVER and IRSA_CACHE set", env)
			}
		})
	}
}

func TestLint(t *testing.T) {
	returned, failure, leaves := callFunction(t, "Lint", nil, fakeengine.Answers{Stdout: ""})
	if failure != nil || returned == nil {
		t.Fatalf("Lint failed: %s", failure)
	}
	chain := stdoutChain(t, leaves)
	assertGoContainer(t, chain)
	var steps [][]string
	for _, e := range chain.Find("withExec") {
		steps = append(steps, strings_(e.Args["args"]))
	}
	if len(steps) != 2 || steps[0][0] != "sh" || !strings.Contains(steps[0][2], "gofmt -l .") || !slices.Equal(steps[1], []string{"go", "vet", "./..."}) {
		t.Errorf("lint steps = %q, want gofmt -l then go vet ./...", steps)
	}
}
