package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
)

// fieldErrors checks the YAML document data against the fields of t (a struct type, by its json tags) and returns one
// message per problem, each naming the field's path and its line: a key t has no field for, or a key that matches a
// field only in case. Field names match exactly, as Kubernetes' strict field validation does (kubectl apply
// --validate=strict): encoding/json's case-insensitive matching would read `Bucket:` as bucket, so two spellings
// would mean one field. Nil when the document does not parse (the decoder reports that) or has no such key.
func fieldErrors(data []byte, t reflect.Type) []string {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return nil
	}
	var out []string
	walkFields(doc.Content[0], t, "", &out)
	return out
}

func walkFields(n *yamlv3.Node, t reflect.Type, path string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yamlv3.AliasNode && n.Alias != nil:
		walkFields(n.Alias, t, path, out)
	case t.Kind() == reflect.Slice && n.Kind == yamlv3.SequenceNode:
		for i, item := range n.Content {
			walkFields(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case t.Kind() == reflect.Struct && n.Kind == yamlv3.MappingNode:
		fields := jsonFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, value := n.Content[i], n.Content[i+1]
			name := key.Value
			p := name
			if path != "" {
				p = path + "." + name
			}
			if ft, ok := fields[name]; ok {
				walkFields(value, ft, p, out)
				continue
			}
			msg := fmt.Sprintf("line %d: unknown field %q", key.Line, p)
			for known := range fields {
				if strings.EqualFold(known, name) {
					msg += fmt.Sprintf(" (field names are case-sensitive: did you mean %q?)", known)
				}
			}
			if len(fields) > 0 && !strings.Contains(msg, "did you mean") {
				names := slices.Sorted(func(yield func(string) bool) {
					for k := range fields {
						if !yield(k) {
							return
						}
					}
				})
				where := "irsa.yaml"
				if path != "" {
					where = path
				}
				msg += fmt.Sprintf(" (%s has %s)", where, strings.Join(names, ", "))
			}
			*out = append(*out, msg)
		}
	}
}

// jsonFields maps the JSON names of t's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
