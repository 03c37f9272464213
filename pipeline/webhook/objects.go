package webhook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"reflect"
	"sort"
	"strings"
	"text/template"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// object is one rendered manifest.
type object struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	JSON       []byte
}

// ID is how changes and errors name the object: "kind namespace/name" or "kind name".
func (o object) ID() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// render fills the templates in fsys (read in file-name order) with values and splits them into objects.
func render(fsys fs.FS, values any, labels map[string]string) ([]object, error) {
	files, err := fs.Glob(fsys, "*/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	funcs := template.FuncMap{"labels": func(indent int) string {
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "\n%s%s: %q", strings.Repeat(" ", indent), k, labels[k])
		}
		return b.String()
	}}
	var out []object
	for _, f := range files {
		text, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		tmpl, err := template.New(f).Funcs(funcs).Option("missingkey=error").Parse(string(text))
		if err != nil {
			return nil, fmt.Errorf("parse manifest template %s: %w", f, err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, values); err != nil {
			return nil, fmt.Errorf("fill manifest template %s: %w", f, err)
		}
		objs, err := splitYAML(buf.Bytes())
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", f, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

func splitYAML(b []byte) ([]object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out []object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if string(j) == "null" {
			continue
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(j, &meta); err != nil {
			return nil, err
		}
		if meta.Kind == "" || meta.Metadata.Name == "" {
			return nil, fmt.Errorf("document without kind or name: %s", j)
		}
		out = append(out, object{APIVersion: meta.APIVersion, Kind: meta.Kind, Namespace: meta.Metadata.Namespace, Name: meta.Metadata.Name, JSON: j})
	}
}

// objectClient reaches any kind a manifest holds: discovery's REST mapper finds the resource and its scope, the
// dynamic client reads, applies (server-side, field manager config.FieldManager) and deletes it.
type objectClient struct {
	mapper meta.RESTMapper
	dyn    dynamic.Interface
}

// newObjectClient builds the mapper and the dynamic client on the clientset's own HTTP client, rate limiter and
// server URL, so they share its credentials and its connections.
func newObjectClient(c kubernetes.Interface) (*objectClient, error) {
	rc, ok := c.Discovery().RESTClient().(*rest.RESTClient)
	if !ok || rc == nil || rc.Client == nil {
		return nil, errors.New("webhook: the Kubernetes client has no HTTP client to build a dynamic client on")
	}
	cfg := &rest.Config{Host: rc.Get().URL().String(), RateLimiter: rc.GetRateLimiter()}
	dyn, err := dynamic.NewForConfigAndClient(cfg, rc.Client)
	if err != nil {
		return nil, fmt.Errorf("webhook: dynamic client for %s: %w", cfg.Host, err)
	}
	return &objectClient{mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Discovery())), dyn: dyn}, nil
}

// resource is how to reach o: namespaced or cluster-wide, as the apiserver serves its kind.
func (c *objectClient) resource(o object) (dynamic.ResourceInterface, error) {
	gv, err := schema.ParseGroupVersion(o.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: apiVersion %q: %w", o.ID(), o.APIVersion, err)
	}
	m, err := c.mapper.RESTMapping(gv.WithKind(o.Kind).GroupKind(), gv.Version)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: kind %s/%s is not served by the apiserver: %w", o.ID(), o.APIVersion, o.Kind, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.dyn.Resource(m.Resource).Namespace(o.Namespace), nil
	}
	return c.dyn.Resource(m.Resource), nil
}

// live is an object as the apiserver returned it; nil when it does not exist.
type live = *unstructured.Unstructured

func (c *objectClient) get(ctx context.Context, o object) (live, error) {
	r, err := c.resource(o)
	if err != nil {
		return nil, err
	}
	u, err := r.Get(ctx, o.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", o.ID(), err)
	}
	return u, nil
}

func (c *objectClient) apply(ctx context.Context, o object, dryRun bool) (live, error) {
	r, err := c.resource(o)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(o.JSON); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", o.ID(), err)
	}
	opts := metav1.ApplyOptions{FieldManager: config.FieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	after, err := r.Apply(ctx, o.Name, u, opts)
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", o.ID(), err)
	}
	return after, nil
}

func (c *objectClient) delete(ctx context.Context, o object) error {
	r, err := c.resource(o)
	if err != nil {
		return err
	}
	background := metav1.DeletePropagationBackground
	if err := r.Delete(ctx, o.Name, metav1.DeleteOptions{PropagationPolicy: &background}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", o.ID(), err)
	}
	return nil
}

// ownedByIrsa says whether the object carries irsa's managed-by label.
func ownedByIrsa(l live) bool {
	return l.GetLabels()[config.ManagedByTagKey] == config.ManagedByValue
}

// deleting says whether the object is already being deleted (a namespace waiting for its finalizers).
func deleting(l live) bool {
	return l.GetDeletionTimestamp() != nil
}

// diffPaths lists the fields that differ between two versions of an object, ignoring what the apiserver maintains.
func diffPaths(before, after live) []string {
	var out []string
	walkDiff("", normalize(before.Object), normalize(after.Object), &out)
	sort.Strings(out)
	return out
}

func normalize(l map[string]any) map[string]any {
	m := map[string]any{}
	for k, v := range l {
		if k != "status" {
			m[k] = v
		}
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		c := map[string]any{}
		for k, v := range md {
			switch k {
			case "managedFields", "resourceVersion", "generation", "uid", "creationTimestamp":
			default:
				c[k] = v
			}
		}
		m["metadata"] = c
	}
	return m
}

func walkDiff(path string, a, b any, out *[]string) {
	ma, okA := a.(map[string]any)
	mb, okB := b.(map[string]any)
	if okA && okB {
		keys := map[string]bool{}
		for k := range ma {
			keys[k] = true
		}
		for k := range mb {
			keys[k] = true
		}
		for k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			walkDiff(p, ma[k], mb[k], out)
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, path)
	}
}
