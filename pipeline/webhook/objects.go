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
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
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

// resource is how to reach one kind through the typed clientset's REST clients, so server-side apply works on
// rendered JSON without a dynamic client.
type resource struct {
	client rest.Interface
	plural string
}

func resourceFor(c kubernetes.Interface, o object) (resource, error) {
	switch o.APIVersion + "/" + o.Kind {
	case "v1/Namespace":
		return resource{c.CoreV1().RESTClient(), "namespaces"}, nil
	case "v1/Secret":
		return resource{c.CoreV1().RESTClient(), "secrets"}, nil
	case "v1/ServiceAccount":
		return resource{c.CoreV1().RESTClient(), "serviceaccounts"}, nil
	case "v1/Service":
		return resource{c.CoreV1().RESTClient(), "services"}, nil
	case "rbac.authorization.k8s.io/v1/ClusterRole":
		return resource{c.RbacV1().RESTClient(), "clusterroles"}, nil
	case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
		return resource{c.RbacV1().RESTClient(), "clusterrolebindings"}, nil
	case "apps/v1/Deployment":
		return resource{c.AppsV1().RESTClient(), "deployments"}, nil
	case "policy/v1/PodDisruptionBudget":
		return resource{c.PolicyV1().RESTClient(), "poddisruptionbudgets"}, nil
	case "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration":
		return resource{c.AdmissionregistrationV1().RESTClient(), "mutatingwebhookconfigurations"}, nil
	}
	return resource{}, fmt.Errorf("manifest %s: unsupported kind %s/%s", o.ID(), o.APIVersion, o.Kind)
}

// live is an object as the apiserver returned it; nil when it does not exist.
type live map[string]any

func (r resource) get(ctx context.Context, o object) (live, error) {
	b, err := r.client.Get().NamespaceIfScoped(o.Namespace, o.Namespace != "").Resource(r.plural).Name(o.Name).DoRaw(ctx)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", o.ID(), err)
	}
	return decode(b)
}

func (r resource) apply(ctx context.Context, o object, dryRun bool) (live, error) {
	req := r.client.Patch(types.ApplyPatchType).NamespaceIfScoped(o.Namespace, o.Namespace != "").Resource(r.plural).Name(o.Name).
		Param("fieldManager", config.FieldManager).Param("force", "true").Body(o.JSON)
	if dryRun {
		req = req.Param("dryRun", "All")
	}
	b, err := req.DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", o.ID(), err)
	}
	return decode(b)
}

func (r resource) delete(ctx context.Context, o object) error {
	err := r.client.Delete().NamespaceIfScoped(o.Namespace, o.Namespace != "").Resource(r.plural).Name(o.Name).
		Param("propagationPolicy", "Background").Do(ctx).Error()
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", o.ID(), err)
	}
	return nil
}

func decode(b []byte) (live, error) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode apiserver response: %w", err)
	}
	return m, nil
}

func (l live) labels() map[string]any {
	md, _ := l["metadata"].(map[string]any)
	lb, _ := md["labels"].(map[string]any)
	return lb
}

func (l live) resourceVersion() string {
	md, _ := l["metadata"].(map[string]any)
	rv, _ := md["resourceVersion"].(string)
	return rv
}

// deleting says whether the object is already being deleted (a namespace waiting for its finalizers).
func (l live) deleting() bool {
	md, _ := l["metadata"].(map[string]any)
	return md["deletionTimestamp"] != nil
}

// ownedByIrsa says whether the object carries irsa's managed-by label.
func (l live) ownedByIrsa() bool {
	return l.labels()[config.ManagedByTagKey] == config.ManagedByValue
}

// diffPaths lists the fields that differ between two versions of an object, ignoring what the apiserver maintains.
func diffPaths(before, after live) []string {
	var out []string
	walkDiff("", normalize(before), normalize(after), &out)
	sort.Strings(out)
	return out
}

func normalize(l live) map[string]any {
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
