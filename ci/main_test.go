package main

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"dagger/irsa/fakeengine"
	"dagger/irsa/internal/dagger"
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

	// Other credentials, for the With* functions.
	otherKubeconfigID = "fake-secret:other-kubeconfig"
	otherAccessKeyID  = "fake-secret:other-aws-access-key-id"
	otherSecretKeyID  = "fake-secret:other-aws-secret-access-key"
	otherAWSConfigID  = "fake-secret:other-aws-config"
)

var allSecretIDs = []string{
	kubeconfigID, accessKeyID, secretAccessKeyID, sessionTokenID, awsConfigID, awsCredentialsID,
	otherKubeconfigID, otherAccessKeyID, otherSecretKeyID, otherAWSConfigID,
}

// callFunction calls fn the way `dagger call` does: the engine presents the call, the JSON of the
// object it is called on (parent: the constructor's or a With* function's result) and its JSON
// arguments, and the module's generated dispatcher reads them, invokes the function and stores
// the result. It returns the stored JSON (nil if the function failed), the stored error's chain,
// and the scalar fields the module asked the engine for.
func callFunction(t *testing.T, parent, fn string, args map[string]any, answers fakeengine.Answers) (*string, fakeengine.Chain, []fakeengine.Leaf) {
	t.Helper()
	engine := fakeengine.Start()
	inv := fakeengine.Invocation{ParentName: "Irsa", Name: fn, Parent: parent, Args: map[string]string{}}
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

// construct calls the constructor as `dagger call --flag=value... FUNCTION` does first, with the
// source the engine gives by default, and returns the object's JSON, the parent of the next call.
func construct(t *testing.T, args map[string]any) string {
	t.Helper()
	return callIrsa(t, `{}`, "", with(map[string]any{"source": sourceID}, args))
}

// callIrsa calls a function that returns an Irsa (the constructor or a With* function) on parent
// and returns the new object's JSON.
func callIrsa(t *testing.T, parent, fn string, args map[string]any) string {
	t.Helper()
	returned, failure, _ := callFunction(t, parent, fn, args, fakeengine.Answers{})
	if failure != nil || returned == nil {
		t.Fatalf("%q failed: %s", fn, failure)
	}
	return *returned
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

// IDs of the other objects the engine would pass, for --config=./irsa.yaml, --kube-api=tcp://...
const (
	configID   = "fake-file:irsa.yaml"
	caBundleID = "fake-file:ca.pem"
	kubeAPIID  = "fake-service:kube-api"
)

// allAccess is every constructor argument but the images: what the cluster functions share.
func allAccess() map[string]any {
	return map[string]any{
		"config":             configID,
		"clusterName":        "dev",
		"clusterType":        "kind",
		"region":             "eu-west-1",
		"bucket":             "dev-irsa",
		"issuerURL":          "https://dev-irsa.s3.eu-west-1.amazonaws.com",
		"awsEndpointURL":     "https://moto:5000",
		"caBundle":           caBundleID,
		"kubeconfig":         kubeconfigID,
		"kubeContext":        "kind-irsa",
		"kubeAPI":            kubeAPIID,
		"awsAccessKeyID":     accessKeyID,
		"awsSecretAccessKey": secretAccessKeyID,
		"awsSessionToken":    sessionTokenID,
		"awsConfig":          awsConfigID,
		"awsCredentials":     awsCredentialsID,
		"awsProfile":         "ci",
		"format":             "json",
	}
}

// Image overrides, as the constructor or WithImages takes them and as irsa's flags.
const (
	irsaImage    = "registry.example.com/irsa:dev"
	webhookImage = "registry.example.com/pod-identity-webhook:v0.6.17"
	verifyImage  = "registry.example.com/aws-cli:2"
)

var allImages = map[string]any{"image": irsaImage, "webhookImage": webhookImage, "verifyImage": verifyImage}

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

// argv is the command line allAccess gives irsa for command: the shared flags in the order the
// module writes them, the image flags the command takes, then tail (its own flags and arguments).
func argv(command string, images []string, tail ...string) []string {
	out := []string{
		binPath, command,
		"--config", "/etc/irsa/irsa.yaml",
		"--kubeconfig", "/run/secrets/irsa/kubeconfig",
		"--context", "kind-irsa",
		"--cluster-name", "dev",
		"--region", "eu-west-1",
		"--bucket", "dev-irsa",
		"--issuer-url", "https://dev-irsa.s3.eu-west-1.amazonaws.com",
		"--aws-endpoint-url", "https://moto:5000",
		"--ca-bundle", "/etc/irsa/ca-bundle.pem",
		"--cluster-type", "kind",
	}
	out = append(out, images...)
	out = append(out, "--output", "json")
	return append(out, tail...)
}

// The image flags allImages becomes: all three, and the two the verify command takes.
var (
	allImageFlags    = []string{"--image", irsaImage, "--webhook-image", webhookImage, "--verify-image", verifyImage}
	verifyImageFlags = []string{"--image", irsaImage, "--verify-image", verifyImage}
)

// allAccessRun is what allAccess mounts and sets for every run.
func allAccessRun(argv []string) run {
	return run{
		argv: argv,
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
		files:          map[string]string{"/etc/irsa/irsa.yaml": configID, "/etc/irsa/ca-bundle.pem": caBundleID},
		serviceBinding: kubeAPIID,
	}
}

// minimalArgs is a kubeconfig, a key pair and a region: the least a real setup is given.
func minimalArgs() map[string]any {
	return map[string]any{"kubeconfig": kubeconfigID, "awsAccessKeyID": accessKeyID, "awsSecretAccessKey": secretAccessKeyID, "region": "us-east-1"}
}

func minimalRun(argv ...string) run {
	return run{
		argv:        argv,
		secretFiles: map[string]string{"/run/secrets/irsa/kubeconfig": kubeconfigID},
		secretVars:  map[string]string{"AWS_ACCESS_KEY_ID": accessKeyID, "AWS_SECRET_ACCESS_KEY": secretAccessKeyID},
	}
}

// callRun calls fn on parent, checks it returned irsa's report, and the run it built against want.
func callRun(t *testing.T, parent, fn string, args map[string]any, want run) {
	t.Helper()
	returned, failure, leaves := callFunction(t, parent, fn, args, fakeengine.Answers{Stdout: report})
	if failure != nil {
		t.Fatalf("%s failed: %s", fn, failure)
	}
	if returned == nil || *returned != toJSON(report) {
		t.Errorf("%s returned %v, want the report %q", fn, returned, report)
	}
	assertRun(t, stdoutChain(t, leaves), want)
}

func TestClusterFunctions(t *testing.T) {
	// The state `dagger call --config=... --cluster-name=... (every shared flag) FUNCTION` hands on.
	parent := construct(t, allAccess())
	bindRun := allAccessRun(argv("bind", nil,
		"--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
		"--policy-arn", "arn:aws:iam::123456789012:policy/extra",
		"--inline-policy", "/etc/irsa/inline-policy.json",
		"--role-name", "uploader",
		"apps/uploader"))
	bindRun.files["/etc/irsa/inline-policy.json"] = "fake-file:policy.json"

	for _, tc := range []struct {
		name string
		fn   string
		args map[string]any
		want run
	}{
		// The engine passes +default values (verify: true) when the caller leaves them out.
		{"setup", "Setup", map[string]any{"verify": true}, allAccessRun(argv("apply", nil, "--verify"))},
		{"setup only", "Setup", map[string]any{"only": []string{"keys", "issuer"}, "verify": true},
			allAccessRun(argv("apply", nil, "--only", "keys,issuer", "--verify"))},
		{"setup without verify", "Setup", map[string]any{"verify": false}, allAccessRun(argv("apply", nil))},
		{"plan", "Plan", map[string]any{"only": []string{"webhook"}}, allAccessRun(argv("plan", nil, "--only", "webhook"))},
		{"status", "Status", nil, allAccessRun(argv("status", nil))},
		{"teardown", "Teardown", map[string]any{"only": []string{"bindings", "verify"}},
			allAccessRun(argv("teardown", nil, "--yes", "--only", "bindings,verify"))},
		{"teardown aws-only", "Teardown", map[string]any{"awsOnly": true},
			allAccessRun(argv("teardown", nil, "--yes", "--aws-only"))},
		{"verify", "Verify", nil, allAccessRun(argv("verify", nil))},
		{"verify keep", "Verify", map[string]any{"keep": true}, allAccessRun(argv("verify", nil, "--keep"))},
		{"doctor", "Doctor", nil, allAccessRun(argv("doctor", nil))},
		{"doctor service account live", "Doctor", map[string]any{"serviceAccount": "apps/uploader", "live": true},
			allAccessRun(argv("doctor", nil, "--live", "apps/uploader"))},
		{"bind", "Bind", map[string]any{
			"serviceAccount": "apps/uploader",
			"policyARN":      []string{"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess", "arn:aws:iam::123456789012:policy/extra"},
			"inlinePolicy":   "fake-file:policy.json",
			"roleName":       "uploader",
		}, bindRun},
		{"bind create service account", "Bind", map[string]any{"serviceAccount": "apps/uploader", "createServiceAccount": true},
			allAccessRun(argv("bind", nil, "--create-service-account", "apps/uploader"))},
		{"unbind", "Unbind", map[string]any{"serviceAccount": "apps/uploader"}, allAccessRun(argv("unbind", nil, "--yes", "apps/uploader"))},
		{"unbind role name", "Unbind", map[string]any{"serviceAccount": "apps/uploader", "roleName": "uploader"},
			allAccessRun(argv("unbind", nil, "--yes", "--role-name", "uploader", "apps/uploader"))},
	} {
		t.Run(tc.name, func(t *testing.T) { callRun(t, parent, tc.fn, tc.args, tc.want) })
	}

	t.Run("minimal setup", func(t *testing.T) {
		callRun(t, construct(t, minimalArgs()), "Setup", map[string]any{"verify": true},
			minimalRun(binPath, "apply", "--kubeconfig", "/run/secrets/irsa/kubeconfig", "--region", "us-east-1", "--verify"))
	})
}

// Image overrides reach irsa as --image, --webhook-image and --verify-image, on the commands that
// run those images and no others.
func TestImageOverrides(t *testing.T) {
	parent := construct(t, with(allAccess(), allImages))
	for _, tc := range []struct {
		fn      string
		args    map[string]any
		command string
		images  []string
		tail    []string
	}{
		{"Setup", map[string]any{"verify": true}, "apply", allImageFlags, []string{"--verify"}},
		{"Plan", nil, "plan", allImageFlags, nil},
		{"Status", nil, "status", allImageFlags, nil},
		{"Teardown", nil, "teardown", allImageFlags, []string{"--yes"}},
		{"Verify", nil, "verify", verifyImageFlags, nil},
		{"Doctor", nil, "doctor", nil, nil},
		{"Bind", map[string]any{"serviceAccount": "apps/uploader"}, "bind", nil, []string{"apps/uploader"}},
		{"Unbind", map[string]any{"serviceAccount": "apps/uploader"}, "unbind", nil, []string{"--yes", "apps/uploader"}},
	} {
		t.Run(tc.fn, func(t *testing.T) {
			callRun(t, parent, tc.fn, tc.args, allAccessRun(argv(tc.command, tc.images, tc.tail...)))
		})
	}

	t.Run("WithImages one image", func(t *testing.T) {
		withWebhook := callIrsa(t, construct(t, minimalArgs()), "WithImages", map[string]any{"webhookImage": webhookImage})
		callRun(t, withWebhook, "Setup", map[string]any{"verify": true}, minimalRun(binPath, "apply",
			"--kubeconfig", "/run/secrets/irsa/kubeconfig", "--region", "us-east-1", "--webhook-image", webhookImage, "--verify"))
	})
}

// state decodes an Irsa object's JSON.
func state(t *testing.T, raw string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("object %s: %v", raw, err)
	}
	return m
}

// The object state the constructor hands on holds every argument.
func TestConstructor(t *testing.T) {
	got := state(t, construct(t, with(allAccess(), allImages)))
	want := map[string]any{
		"Source": sourceID, "Config": configID, "ClusterName": "dev", "ClusterType": "kind", "Region": "eu-west-1",
		"Bucket": "dev-irsa", "IssuerURL": "https://dev-irsa.s3.eu-west-1.amazonaws.com", "AWSEndpointURL": "https://moto:5000",
		"CABundle": caBundleID, "Kubeconfig": kubeconfigID, "KubeContext": "kind-irsa", "KubeAPI": kubeAPIID,
		"AWSAccessKeyID": accessKeyID, "AWSSecretAccessKey": secretAccessKeyID, "AWSSessionToken": sessionTokenID,
		"AWSConfig": awsConfigID, "AWSCredentials": awsCredentialsID, "AWSProfile": "ci",
		"Image": irsaImage, "WebhookImage": webhookImage, "VerifyImage": verifyImage, "Format": "json",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("constructor state:\n got %v\nwant %v", got, want)
	}
	if got := state(t, construct(t, map[string]any{"source": "fake-dir:other"}))["Source"]; got != "fake-dir:other" {
		t.Errorf("constructor source = %v, want fake-dir:other", got)
	}
}

// Each With* function replaces its group of settings, and only that, in the state it hands on.
func TestWithFunctions(t *testing.T) {
	base := construct(t, with(allAccess(), allImages))
	for _, tc := range []struct {
		name    string
		fn      string
		args    map[string]any
		changed map[string]any // fields that differ from base
	}{
		{"config", "WithConfig", map[string]any{"config": "fake-file:other.yaml"}, map[string]any{"Config": "fake-file:other.yaml"}},
		{"kubeconfig", "WithKubeconfig", map[string]any{"kubeconfig": otherKubeconfigID},
			map[string]any{"Kubeconfig": otherKubeconfigID, "KubeContext": ""}},
		{"kubeconfig and context", "WithKubeconfig", map[string]any{"kubeconfig": otherKubeconfigID, "kubeContext": "prod"},
			map[string]any{"Kubeconfig": otherKubeconfigID, "KubeContext": "prod"}},
		{"kube API", "WithKubeAPI", map[string]any{"kubeAPI": "fake-service:other"}, map[string]any{"KubeAPI": "fake-service:other"}},
		{"AWS keys", "WithAWSCredentials", map[string]any{"awsAccessKeyID": otherAccessKeyID, "awsSecretAccessKey": otherSecretKeyID},
			map[string]any{"AWSAccessKeyID": otherAccessKeyID, "AWSSecretAccessKey": otherSecretKeyID, "AWSSessionToken": nil}},
		{"AWS config", "WithAWSConfig", map[string]any{"awsConfig": otherAWSConfigID, "awsProfile": "prod"},
			map[string]any{"AWSConfig": otherAWSConfigID, "AWSCredentials": nil, "AWSProfile": "prod"}},
		{"AWS endpoint", "WithAWSEndpoint", map[string]any{"awsEndpointURL": "http://localstack:4566"},
			map[string]any{"AWSEndpointURL": "http://localstack:4566", "CABundle": nil}},
		{"AWS endpoint and CA", "WithAWSEndpoint", map[string]any{"awsEndpointURL": "https://moto:5001", "caBundle": "fake-file:other-ca.pem"},
			map[string]any{"AWSEndpointURL": "https://moto:5001", "CABundle": "fake-file:other-ca.pem"}},
		{"images", "WithImages", map[string]any{"image": "mirror/irsa:1", "webhookImage": "mirror/webhook:1", "verifyImage": "mirror/cli:1"},
			map[string]any{"Image": "mirror/irsa:1", "WebhookImage": "mirror/webhook:1", "VerifyImage": "mirror/cli:1"}},
		{"one image", "WithImages", map[string]any{"webhookImage": "mirror/webhook:1"},
			map[string]any{"Image": "", "WebhookImage": "mirror/webhook:1", "VerifyImage": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := state(t, callIrsa(t, base, tc.fn, tc.args))
			want := with(state(t, base), tc.changed)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s state:\n got %v\nwant %v", tc.fn, got, want)
			}
		})
	}
}

// A chain of With* calls reaches the command line, and the object a With* function was called on
// still runs as it did: `dagger call ... with-images ... with-kubeconfig ... setup` next to
// `dagger call ... setup`.
func TestWithChain(t *testing.T) {
	original := construct(t, minimalArgs())
	changed := callIrsa(t, original, "WithImages", allImages)
	changed = callIrsa(t, changed, "WithKubeconfig", map[string]any{"kubeconfig": otherKubeconfigID, "kubeContext": "prod"})
	changed = callIrsa(t, changed, "WithAWSEndpoint", map[string]any{"awsEndpointURL": "https://moto:5000", "caBundle": caBundleID})

	want := minimalRun(binPath, "apply", "--kubeconfig", "/run/secrets/irsa/kubeconfig", "--context", "prod", "--region", "us-east-1",
		"--aws-endpoint-url", "https://moto:5000", "--ca-bundle", "/etc/irsa/ca-bundle.pem",
		"--image", irsaImage, "--webhook-image", webhookImage, "--verify-image", verifyImage, "--verify")
	want.secretFiles = map[string]string{"/run/secrets/irsa/kubeconfig": otherKubeconfigID}
	want.files = map[string]string{"/etc/irsa/ca-bundle.pem": caBundleID}
	callRun(t, changed, "Setup", map[string]any{"verify": true}, want)

	callRun(t, original, "Setup", map[string]any{"verify": true},
		minimalRun(binPath, "apply", "--kubeconfig", "/run/secrets/irsa/kubeconfig", "--region", "us-east-1", "--verify"))
}

// load returns the module object for an ID, as the dispatcher decodes one.
func load[T any](t *testing.T, id string) *T {
	t.Helper()
	v := new(T)
	if err := json.Unmarshal([]byte(toJSON(id)), v); err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	return v
}

// Called from Go, as another module would through its generated client, a With* function returns
// a new object and leaves the one it was called on as it was.
func TestWithReturnsCopy(t *testing.T) {
	var m Irsa
	if err := json.Unmarshal([]byte(construct(t, with(allAccess(), allImages))), &m); err != nil {
		t.Fatalf("decode the constructor's state: %v", err)
	}
	before := m
	secret := load[dagger.Secret](t, otherKubeconfigID)
	file := load[dagger.File](t, "fake-file:other")
	for name, call := range map[string]func() *Irsa{
		"WithConfig":         func() *Irsa { return m.WithConfig(file) },
		"WithKubeconfig":     func() *Irsa { return m.WithKubeconfig(secret, "prod") },
		"WithKubeAPI":        func() *Irsa { return m.WithKubeAPI(load[dagger.Service](t, "fake-service:other")) },
		"WithAWSCredentials": func() *Irsa { return m.WithAWSCredentials(secret, secret, nil) },
		"WithAWSConfig":      func() *Irsa { return m.WithAWSConfig(secret, nil, "prod") },
		"WithAWSEndpoint":    func() *Irsa { return m.WithAWSEndpoint("http://localstack:4566", file) },
		"WithImages":         func() *Irsa { return m.WithImages("a", "b", "c") },
	} {
		got := call()
		if got == &m {
			t.Errorf("%s returned the object it was called on", name)
		}
		if m != before {
			t.Errorf("%s changed the object it was called on", name)
		}
		if *got == before {
			t.Errorf("%s returned an unchanged copy", name)
		}
	}
}

func TestClusterFunctionFailsWithIrsaError(t *testing.T) {
	const msg = `process "/usr/local/bin/irsa apply --kubeconfig /run/secrets/irsa/kubeconfig --verify" did not complete successfully: exit code: 1`
	parent := construct(t, map[string]any{"kubeconfig": kubeconfigID})
	returned, failure, _ := callFunction(t, parent, "Setup", map[string]any{"verify": true}, fakeengine.Answers{ExecError: msg})
	if returned != nil {
		t.Errorf("Setup stored result %q after irsa failed", *returned)
	}
	if got := only(t, failure, "error").Args["message"]; !strings.Contains(got.(string), msg) {
		t.Errorf("stored error = %q, want it to contain %q", got, msg)
	}
}

func TestBuild(t *testing.T) {
	returned, failure, _ := callFunction(t, construct(t, nil), "Build", nil, fakeengine.Answers{})
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
	returned, failure, _ := callFunction(t, construct(t, nil), "Container", nil, fakeengine.Answers{})
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
			returned, failure, leaves := callFunction(t, construct(t, nil), "Test", tc.args, fakeengine.Answers{Stdout: "ok\n"})
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
	returned, failure, leaves := callFunction(t, construct(t, nil), "Lint", nil, fakeengine.Answers{Stdout: ""})
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
