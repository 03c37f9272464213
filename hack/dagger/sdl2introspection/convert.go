package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/dagger/dagger/cmd/codegen/introspection"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"golang.org/x/mod/semver"
)

// legacyIDsBefore is the first engine version that no longer serves per-type FooID scalars
// (core/schema/legacy_id.go in github.com/dagger/dagger).
const legacyIDsBefore = "v0.22.0"

// hiddenFromModules reports whether a core type is outside a module's view of the API.
func hiddenFromModules(name string) bool {
	return name == "Host" || strings.HasPrefix(name, "Engine")
}

// convert turns the SDL of the Dagger core schema into the introspection response an engine of
// the given version serves to a module. Types and fields are sorted by name so the output is
// deterministic.
func convert(name, sdl, version string) (*introspection.Response, error) {
	if !semver.IsValid(version) {
		return nil, fmt.Errorf("schema version %q is not a semantic version like v0.21.8", version)
	}
	schema, err := gqlparser.LoadSchema(&ast.Source{Name: name, Input: sdl})
	if err != nil {
		return nil, fmt.Errorf("parse schema %q: %w", name, err)
	}
	if schema.Query == nil {
		return nil, fmt.Errorf("schema %q has no Query type", name)
	}

	out := &introspection.Schema{}
	out.QueryType.Name = schema.Query.Name

	names := make([]string, 0, len(schema.Types))
	for n := range schema.Types {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t, err := convertType(schema, schema.Types[n])
		if err != nil {
			return nil, err
		}
		out.Types = append(out.Types, t)
	}

	dirNames := make([]string, 0, len(schema.Directives))
	for n := range schema.Directives {
		dirNames = append(dirNames, n)
	}
	sort.Strings(dirNames)
	for _, n := range dirNames {
		d := schema.Directives[n]
		args, err := convertArgs(schema, d.Arguments)
		if err != nil {
			return nil, fmt.Errorf("directive @%s: %w", n, err)
		}
		locs := make([]string, 0, len(d.Locations))
		for _, l := range d.Locations {
			locs = append(locs, string(l))
		}
		out.Directives = append(out.Directives, &introspection.DirectiveDef{
			Name: d.Name, Description: d.Description, Locations: locs, Args: args,
		})
	}

	for _, n := range names {
		if hiddenFromModules(n) {
			out.ScrubType(n)
		}
	}
	if semver.Compare(version, legacyIDsBefore) < 0 {
		addLegacyIDs(out)
	}
	return &introspection.Response{Schema: out, SchemaVersion: version}, nil
}

// addLegacyIDs adds, for every object and interface with an id field, the FooID scalar and the
// Query.loadFooFromID(id: FooID!): Foo! field that engines before v0.22.0 serve.
func addLegacyIDs(s *introspection.Schema) {
	query := s.Query()
	var added []*introspection.Type
	for _, t := range s.Types {
		if strings.HasPrefix(t.Name, "_") || (t.Kind != introspection.TypeKindObject && t.Kind != introspection.TypeKindInterface) {
			continue
		}
		// The root has no ID of its own and Node is built in rather than installed like other
		// interfaces: the v0.21.8 client library has neither QueryID nor NodeID.
		if !hasField(t, "id") || t == query || t.Name == "Node" {
			continue
		}
		scalar := t.Name + "ID"
		if s.Types.Get(scalar) != nil {
			continue
		}
		added = append(added, &introspection.Type{
			Kind:        introspection.TypeKindScalar,
			Name:        scalar,
			Description: "The `" + scalar + "` scalar type represents an identifier for an object of type " + t.Name + ".",
		})
		query.Fields = append(query.Fields, &introspection.Field{
			Name:        "load" + t.Name + "FromID",
			Description: "Load a " + t.Name + " from its ID.",
			TypeRef:     nonNull(&introspection.TypeRef{Kind: t.Kind, Name: t.Name}),
			Args: introspection.InputValues{{
				Name:    "id",
				TypeRef: nonNull(&introspection.TypeRef{Kind: introspection.TypeKindScalar, Name: scalar}),
			}},
		})
	}
	s.Types = append(s.Types, added...)
	sort.Slice(s.Types, func(i, j int) bool { return s.Types[i].Name < s.Types[j].Name })
	sort.Slice(query.Fields, func(i, j int) bool { return query.Fields[i].Name < query.Fields[j].Name })
}

func hasField(t *introspection.Type, name string) bool {
	for _, f := range t.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}

func nonNull(of *introspection.TypeRef) *introspection.TypeRef {
	return &introspection.TypeRef{Kind: introspection.TypeKindNonNull, OfType: of}
}

func convertType(schema *ast.Schema, d *ast.Definition) (*introspection.Type, error) {
	t := &introspection.Type{
		Kind:        kindOf(d.Kind),
		Name:        d.Name,
		Description: d.Description,
	}
	var err error
	if t.Directives, err = convertDirectives(d.Directives); err != nil {
		return nil, fmt.Errorf("type %s: %w", d.Name, err)
	}
	for _, i := range d.Interfaces {
		t.Interfaces = append(t.Interfaces, &introspection.Type{Kind: introspection.TypeKindInterface, Name: i})
	}
	switch d.Kind {
	case ast.Object, ast.Interface:
		for _, f := range d.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			field, err := convertField(schema, f)
			if err != nil {
				return nil, fmt.Errorf("type %s: %w", d.Name, err)
			}
			t.Fields = append(t.Fields, field)
		}
		sort.Slice(t.Fields, func(i, j int) bool { return t.Fields[i].Name < t.Fields[j].Name })
		if d.Kind == ast.Interface {
			for _, p := range schema.GetPossibleTypes(d) {
				t.PossibleTypes = append(t.PossibleTypes, &introspection.Type{Kind: kindOf(p.Kind), Name: p.Name})
			}
			sort.Slice(t.PossibleTypes, func(i, j int) bool { return t.PossibleTypes[i].Name < t.PossibleTypes[j].Name })
		}
	case ast.InputObject:
		args := make(ast.ArgumentDefinitionList, 0, len(d.Fields))
		for _, f := range d.Fields {
			args = append(args, &ast.ArgumentDefinition{
				Description: f.Description, Name: f.Name, DefaultValue: f.DefaultValue, Type: f.Type, Directives: f.Directives,
			})
		}
		if t.InputFields, err = convertArgs(schema, args); err != nil {
			return nil, fmt.Errorf("input %s: %w", d.Name, err)
		}
	case ast.Enum:
		for _, v := range d.EnumValues {
			dirs, err := convertDirectives(v.Directives)
			if err != nil {
				return nil, fmt.Errorf("enum %s value %s: %w", d.Name, v.Name, err)
			}
			reason := deprecation(v.Directives)
			t.EnumValues = append(t.EnumValues, introspection.EnumValue{
				Name: v.Name, Description: v.Description, IsDeprecated: reason != nil, DeprecationReason: reason, Directives: dirs,
			})
		}
	case ast.Union:
		for _, p := range d.Types {
			t.PossibleTypes = append(t.PossibleTypes, &introspection.Type{Kind: introspection.TypeKindObject, Name: p})
		}
	}
	return t, nil
}

func convertField(schema *ast.Schema, f *ast.FieldDefinition) (*introspection.Field, error) {
	args, err := convertArgs(schema, f.Arguments)
	if err != nil {
		return nil, fmt.Errorf("field %s: %w", f.Name, err)
	}
	dirs, err := convertDirectives(f.Directives)
	if err != nil {
		return nil, fmt.Errorf("field %s: %w", f.Name, err)
	}
	typeRef, err := convertTypeRef(schema, f.Type)
	if err != nil {
		return nil, fmt.Errorf("field %s: %w", f.Name, err)
	}
	reason := deprecation(f.Directives)
	return &introspection.Field{
		Name: f.Name, Description: f.Description, TypeRef: typeRef, Args: args,
		IsDeprecated: reason != nil, DeprecationReason: reason, Directives: dirs,
	}, nil
}

func convertArgs(schema *ast.Schema, args ast.ArgumentDefinitionList) (introspection.InputValues, error) {
	out := introspection.InputValues{}
	for _, a := range args {
		dirs, err := convertDirectives(a.Directives)
		if err != nil {
			return nil, fmt.Errorf("argument %s: %w", a.Name, err)
		}
		typeRef, err := convertTypeRef(schema, a.Type)
		if err != nil {
			return nil, fmt.Errorf("argument %s: %w", a.Name, err)
		}
		var def *string
		if a.DefaultValue != nil {
			s := a.DefaultValue.String()
			def = &s
		}
		reason := deprecation(a.Directives)
		out = append(out, introspection.InputValue{
			Name: a.Name, Description: a.Description, DefaultValue: def, TypeRef: typeRef,
			Directives: dirs, IsDeprecated: reason != nil, DeprecationReason: reason,
		})
	}
	return out, nil
}

func convertTypeRef(schema *ast.Schema, t *ast.Type) (*introspection.TypeRef, error) {
	if t == nil {
		return nil, fmt.Errorf("missing type")
	}
	var inner *introspection.TypeRef
	if t.Elem != nil {
		elem, err := convertTypeRef(schema, t.Elem)
		if err != nil {
			return nil, err
		}
		inner = &introspection.TypeRef{Kind: introspection.TypeKindList, OfType: elem}
	} else {
		named, ok := schema.Types[t.NamedType]
		if !ok {
			return nil, fmt.Errorf("unknown type %q", t.NamedType)
		}
		inner = &introspection.TypeRef{Kind: kindOf(named.Kind), Name: t.NamedType}
	}
	if t.NonNull {
		return nonNull(inner), nil
	}
	return inner, nil
}

func kindOf(k ast.DefinitionKind) introspection.TypeKind {
	switch k {
	case ast.Scalar:
		return introspection.TypeKindScalar
	case ast.Object:
		return introspection.TypeKindObject
	case ast.Interface:
		return introspection.TypeKindInterface
	case ast.Union:
		return introspection.TypeKindUnion
	case ast.Enum:
		return introspection.TypeKindEnum
	case ast.InputObject:
		return introspection.TypeKindInputObject
	}
	return ""
}

// convertDirectives encodes directive applications the way the engine's introspection does:
// every argument value as JSON text. @deprecated is reported through isDeprecated instead.
func convertDirectives(dirs ast.DirectiveList) (introspection.Directives, error) {
	out := introspection.Directives{}
	for _, d := range dirs {
		if d.Name == "deprecated" {
			continue
		}
		app := &introspection.Directive{Name: d.Name, Args: []*introspection.DirectiveArg{}}
		for _, a := range d.Arguments {
			v, err := a.Value.Value(nil)
			if err != nil {
				return nil, fmt.Errorf("directive @%s argument %s: %w", d.Name, a.Name, err)
			}
			raw, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("directive @%s argument %s: %w", d.Name, a.Name, err)
			}
			s := string(raw)
			app.Args = append(app.Args, &introspection.DirectiveArg{Name: a.Name, Value: &s})
		}
		out = append(out, app)
	}
	return out, nil
}

func deprecation(dirs ast.DirectiveList) *string {
	d := dirs.ForName("deprecated")
	if d == nil {
		return nil
	}
	reason := "No longer supported"
	if a := d.Arguments.ForName("reason"); a != nil && a.Value != nil {
		reason = a.Value.Raw
	}
	return &reason
}
