// Package fakeengine stands in for the Dagger engine's GraphQL API so the irsa module's functions
// can be called and checked on machines where no engine can run (no container registry, and the
// engine cannot be built). It is a fake, not an emulator: it answers the queries the generated
// client sends with just enough data for the dispatcher and the functions to proceed, and it
// records every query so tests can assert on the pipeline a function built.
//
// Objects are identified by the chain of calls that built them. When the client asks for an id,
// the engine hands out a synthetic ID and remembers its chain; an ID used as an argument, or loaded
// with node(id:), is resolved back to that chain. IDs the test made up itself (for example the
// secrets it passes as arguments) stay opaque strings.
package fakeengine

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"dagger/irsa/fakeengine/session"
)

// Call is one field selected in a query, with its arguments decoded: strings, booleans, int64,
// []any and map[string]any.
type Call struct {
	Field string
	Args  map[string]any
}

// Chain is the sequence of calls that built an object, from the root of the query.
type Chain []Call

// Find returns the calls to field in the chain, in order.
func (c Chain) Find(field string) []Call {
	var out []Call
	for _, call := range c {
		if call.Field == field {
			out = append(out, call)
		}
	}
	return out
}

// String renders the chain as field(arg: value, ...) calls joined by dots, arguments sorted by name.
func (c Chain) String() string {
	parts := make([]string, 0, len(c))
	for _, call := range c {
		keys := make([]string, 0, len(call.Args))
		for k := range call.Args {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		args := make([]string, 0, len(keys))
		for _, k := range keys {
			v, _ := json.Marshal(call.Args[k])
			args = append(args, k+": "+string(v))
		}
		parts = append(parts, call.Field+"("+strings.Join(args, ", ")+")")
	}
	return strings.Join(parts, ".")
}

// Leaf is a scalar field the client asked for, such as stdout or id, and the chain of the object
// it was asked of.
type Leaf struct {
	Chain Chain
	Field string
}

// Invocation is the function call the engine presents to the module, as `dagger call` would.
type Invocation struct {
	// ParentName is the object type, "Irsa".
	ParentName string
	// Name is the function name as written in Go, such as "Setup"; "" calls the constructor.
	Name string
	// Parent is the JSON of the parent object, such as {"Source":"source-dir"}.
	Parent string
	// Args maps argument names to JSON values; an object argument is its ID as a JSON string.
	Args map[string]string
}

// Engine is a running fake engine.
type Engine struct {
	mu       sync.Mutex
	call     Invocation
	ids      map[string]Chain
	nextID   int
	leaves   []Leaf
	returned *string
	failed   Chain
	answers  Answers
}

// Answers is what the engine answers for the results of commands.
type Answers struct {
	// Stdout answers every stdout query.
	Stdout string
	// ExecError, when set, fails every stdout query with this message, as a failed withExec does.
	ExecError string
}

var (
	startOnce sync.Once
	started   *Engine
)

// Start serves the fake engine on the listener of package session, which the generated client
// dials. There is one engine per process because there is one client; Start returns it each time.
func Start() *Engine {
	startOnce.Do(func() {
		started = &Engine{ids: map[string]Chain{}}
		go func() { _ = http.Serve(session.Listener, started) }()
	})
	return started
}

// Invoke makes inv the current function call, answers command results with a, and forgets what
// was recorded before.
func (e *Engine) Invoke(inv Invocation, a Answers) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.call = inv
	e.answers = a
	e.leaves = nil
	e.returned = nil
	e.failed = nil
}

// Leaves returns the scalar fields asked for since the last Invoke, in order.
func (e *Engine) Leaves() []Leaf {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Leaf(nil), e.leaves...)
}

// Returned returns the JSON the module stored with returnValue, or the chain of the error it stored
// with returnError.
func (e *Engine) Returned() (value *string, failure Chain) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.returned, e.failed
}

// Resolve returns the chain of an ID the engine handed out.
func (e *Engine) Resolve(id string) (Chain, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.ids[id]
	return c, ok
}

type request struct {
	Query     string         `json:"query"`
	Variables map[string]any `json:"variables"`
}

type gqlError struct {
	Message string `json:"message"`
}

func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if user, _, ok := r.BasicAuth(); !ok || user != session.Token {
		http.Error(w, "missing or wrong session token", http.StatusUnauthorized)
		return
	}
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, map[string]any{"errors": []gqlError{{Message: "decode request: " + err.Error()}}})
		return
	}
	data, err := e.answer(req)
	if err != nil {
		writeJSON(w, map[string]any{"errors": []gqlError{{Message: err.Error()}}})
		return
	}
	writeJSON(w, map[string]any{"data": data})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (e *Engine) answer(req request) (map[string]any, error) {
	doc, err := parser.ParseQuery(&ast.Source{Input: req.Query})
	if err != nil {
		return nil, fmt.Errorf("parse query %q: %w", req.Query, err)
	}
	if len(doc.Operations) != 1 {
		return nil, fmt.Errorf("query %q has %d operations, want 1", req.Query, len(doc.Operations))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.selectionSet(doc.Operations[0].SelectionSet, nil, req.Variables)
}

func (e *Engine) selectionSet(set ast.SelectionSet, chain Chain, vars map[string]any) (map[string]any, error) {
	out := map[string]any{}
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			v, err := e.field(s, chain, vars)
			if err != nil {
				return nil, err
			}
			name := s.Alias
			if name == "" {
				name = s.Name
			}
			out[name] = v
		case *ast.InlineFragment:
			sub, err := e.selectionSet(s.SelectionSet, chain, vars)
			if err != nil {
				return nil, err
			}
			for k, v := range sub {
				out[k] = v
			}
		default:
			return nil, fmt.Errorf("unsupported selection %T", sel)
		}
	}
	return out, nil
}

// argPrefix marks the IDs of the current call's arguments (FunctionCallArgValue objects).
const argPrefix = "fake-arg:"

func (e *Engine) field(f *ast.Field, chain Chain, vars map[string]any) (any, error) {
	args := map[string]any{}
	for _, a := range f.Arguments {
		v, err := a.Value.Value(vars)
		if err != nil {
			return nil, fmt.Errorf("argument %s of %s: %w", a.Name, f.Name, err)
		}
		args[a.Name] = v
	}
	call := Call{Field: f.Name, Args: args}

	if len(f.SelectionSet) > 0 {
		if f.Name == "inputArgs" && isCurrentCall(chain) {
			// The only list the module asks for: one FunctionCallArgValue per argument.
			names := make([]string, 0, len(e.call.Args))
			for n := range e.call.Args {
				names = append(names, n)
			}
			sort.Strings(names)
			list := []any{}
			for _, n := range names {
				item, err := e.selectionSet(f.SelectionSet, Chain{{Field: "node", Args: map[string]any{"id": argPrefix + n}}}, vars)
				if err != nil {
					return nil, err
				}
				list = append(list, item)
			}
			return list, nil
		}
		return e.selectionSet(f.SelectionSet, e.extend(chain, call), vars)
	}

	e.leaves = append(e.leaves, Leaf{Chain: chain, Field: f.Name})
	if isCurrentCall(chain) {
		switch f.Name {
		case "parentName":
			return e.call.ParentName, nil
		case "name":
			return e.call.Name, nil
		case "parent":
			return e.call.Parent, nil
		case "returnValue":
			v, _ := args["value"].(string)
			e.returned = &v
			return nil, nil
		case "returnError":
			id, _ := args["error"].(string)
			e.failed = e.ids[id]
			return nil, nil
		}
	}
	if id, ok := nodeID(chain); ok && strings.HasPrefix(id, argPrefix) {
		name := strings.TrimPrefix(id, argPrefix)
		switch f.Name {
		case "name":
			return name, nil
		case "value":
			return e.call.Args[name], nil
		}
	}
	switch f.Name {
	case "id", "sync":
		if id, ok := nodeID(chain); ok {
			return id, nil
		}
		e.nextID++
		id := "fake-id-" + strconv.Itoa(e.nextID)
		e.ids[id] = chain
		return id, nil
	case "stdout":
		if e.answers.ExecError != "" {
			return nil, fmt.Errorf("%s", e.answers.ExecError)
		}
		return e.answers.Stdout, nil
	}
	return nil, nil
}

// extend appends call to chain, replacing node(id:) of an ID the engine handed out by its chain.
func (e *Engine) extend(chain Chain, call Call) Chain {
	if call.Field == "node" && len(chain) == 0 {
		if id, ok := call.Args["id"].(string); ok {
			if known, ok := e.ids[id]; ok {
				return append(Chain(nil), known...)
			}
		}
	}
	return append(append(Chain(nil), chain...), call)
}

func isCurrentCall(chain Chain) bool {
	return len(chain) == 1 && chain[0].Field == "currentFunctionCall"
}

// nodeID returns X when chain is exactly node(id: X).
func nodeID(chain Chain) (string, bool) {
	if len(chain) != 1 || chain[0].Field != "node" {
		return "", false
	}
	id, ok := chain[0].Args["id"].(string)
	return id, ok
}
