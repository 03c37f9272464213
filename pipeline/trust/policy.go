package trust

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ActionAssumeRoleWithWebIdentity is the action STS authorizes against a role's trust policy.
const ActionAssumeRoleWithWebIdentity = "sts:AssumeRoleWithWebIdentity"

// Request is what a trust policy is evaluated against: the federated principal (the IAM OIDC provider ARN), the action
// and the condition context. Context keys are matched case-insensitively, as IAM does.
type Request struct {
	Principal string
	Action    string
	Context   map[string][]string
}

// Decision is the outcome of a trust policy evaluation.
type Decision struct {
	// Allowed is true when an Allow statement matched and no Deny statement did.
	Allowed bool
	// ExplicitDeny is true when a Deny statement matched (it wins over any Allow).
	ExplicitDeny bool
	// Statement identifies the deciding statement: its Sid, or "#<index>" when it has none; empty for an implicit deny.
	Statement string
	// Reason says in one sentence why, naming the statement and the condition that did not match.
	Reason string
}

// EvaluateTrustPolicy decides whether document, a role trust policy (JSON, or URL-encoded JSON as IAM's GetRole
// returns it), allows req, the way IAM does: an explicit Deny wins, otherwise one matching Allow is enough, otherwise
// the request is implicitly denied.
//
// Supported: Effect; Principal and NotPrincipal (Federated, AWS, Service, "*"); Action and NotAction (strings or lists,
// with * and ? wildcards, case-insensitive); Condition operators String(Not)Equals, String(Not)EqualsIgnoreCase,
// String(Not)Like, each optionally suffixed IfExists and prefixed ForAnyValue: or ForAllValues:, and Null. An unknown
// operator never matches, so it makes an Allow statement inapplicable (IAM would have refused such a policy).
func EvaluateTrustPolicy(document string, req Request) (Decision, error) {
	doc, err := ParsePolicy(document)
	if err != nil {
		return Decision{}, err
	}
	return doc.Evaluate(req), nil
}

// Policy is a parsed trust policy.
type Policy struct {
	Version    string
	Statements []Statement
}

// Statement is one statement of a policy.
type Statement struct {
	Sid          string
	Effect       string
	Principal    principalSet
	NotPrincipal principalSet
	Action       []string
	NotAction    []string
	// Conditions are sorted by operator then key, so reasons are deterministic.
	Conditions []Condition
	index      int
}

// Condition is one operator/key/values triple of a Condition block.
type Condition struct {
	Operator string
	Key      string
	Values   []string
}

// principalSet maps a principal type (Federated, AWS, Service, CanonicalUser) to its values; wildcard means "*".
type principalSet struct {
	present  bool
	wildcard bool
	byType   map[string][]string
}

// ParsePolicy reads a policy document, URL-decoding it first when it does not start with '{'.
func ParsePolicy(document string) (*Policy, error) {
	text := strings.TrimSpace(document)
	if !strings.HasPrefix(text, "{") {
		decoded, err := url.PathUnescape(text)
		if err != nil {
			return nil, fmt.Errorf("parse trust policy: url-decode: %w", err)
		}
		text = strings.TrimSpace(decoded)
	}
	var raw struct {
		Version   string          `json:"Version"`
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, fmt.Errorf("parse trust policy: %w", err)
	}
	if len(raw.Statement) == 0 {
		return nil, fmt.Errorf("parse trust policy: no Statement")
	}
	var rawStatements []json.RawMessage
	if bytes.HasPrefix(bytes.TrimSpace(raw.Statement), []byte("[")) {
		if err := json.Unmarshal(raw.Statement, &rawStatements); err != nil {
			return nil, fmt.Errorf("parse trust policy: Statement: %w", err)
		}
	} else {
		rawStatements = []json.RawMessage{raw.Statement}
	}
	p := &Policy{Version: raw.Version}
	for i, rs := range rawStatements {
		s, err := parseStatement(rs)
		if err != nil {
			return nil, fmt.Errorf("parse trust policy: statement %d: %w", i, err)
		}
		s.index = i
		p.Statements = append(p.Statements, s)
	}
	return p, nil
}

func parseStatement(data json.RawMessage) (Statement, error) {
	var raw struct {
		Sid          string                                `json:"Sid"`
		Effect       string                                `json:"Effect"`
		Principal    json.RawMessage                       `json:"Principal"`
		NotPrincipal json.RawMessage                       `json:"NotPrincipal"`
		Action       json.RawMessage                       `json:"Action"`
		NotAction    json.RawMessage                       `json:"NotAction"`
		Condition    map[string]map[string]json.RawMessage `json:"Condition"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return Statement{}, err
	}
	s := Statement{Sid: raw.Sid, Effect: raw.Effect}
	if s.Effect != "Allow" && s.Effect != "Deny" {
		return Statement{}, fmt.Errorf("Effect %q: want Allow or Deny", raw.Effect)
	}
	var err error
	if s.Principal, err = parsePrincipal(raw.Principal); err != nil {
		return Statement{}, fmt.Errorf("Principal: %w", err)
	}
	if s.NotPrincipal, err = parsePrincipal(raw.NotPrincipal); err != nil {
		return Statement{}, fmt.Errorf("NotPrincipal: %w", err)
	}
	if s.Action, err = stringOrList(raw.Action); err != nil {
		return Statement{}, fmt.Errorf("Action: %w", err)
	}
	if s.NotAction, err = stringOrList(raw.NotAction); err != nil {
		return Statement{}, fmt.Errorf("NotAction: %w", err)
	}
	if !s.Principal.present && !s.NotPrincipal.present {
		return Statement{}, fmt.Errorf("no Principal: a trust policy statement needs one")
	}
	if len(s.Action) == 0 && len(s.NotAction) == 0 {
		return Statement{}, fmt.Errorf("no Action")
	}
	for op, keys := range raw.Condition {
		for key, rv := range keys {
			values, err := stringOrList(rv)
			if err != nil {
				return Statement{}, fmt.Errorf("Condition %s %s: %w", op, key, err)
			}
			s.Conditions = append(s.Conditions, Condition{Operator: op, Key: key, Values: values})
		}
	}
	sort.Slice(s.Conditions, func(i, j int) bool {
		if s.Conditions[i].Operator != s.Conditions[j].Operator {
			return s.Conditions[i].Operator < s.Conditions[j].Operator
		}
		return s.Conditions[i].Key < s.Conditions[j].Key
	})
	return s, nil
}

func parsePrincipal(data json.RawMessage) (principalSet, error) {
	if len(data) == 0 || string(data) == "null" {
		return principalSet{}, nil
	}
	ps := principalSet{present: true, byType: map[string][]string{}}
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		if s != "*" {
			return principalSet{}, fmt.Errorf("%q: a string principal must be \"*\"", s)
		}
		ps.wildcard = true
		return ps, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return principalSet{}, fmt.Errorf("want \"*\" or an object: %w", err)
	}
	for typ, rv := range m {
		values, err := stringOrList(rv)
		if err != nil {
			return principalSet{}, fmt.Errorf("%s: %w", typ, err)
		}
		ps.byType[typ] = values
	}
	return ps, nil
}

// stringOrList reads a JSON string, number, boolean or a list of them as strings.
func stringOrList(data json.RawMessage) ([]string, error) {
	if len(data) == 0 || string(data) == "null" {
		return nil, nil
	}
	var list []any
	if err := json.Unmarshal(data, &list); err != nil {
		var one any
		if err := json.Unmarshal(data, &one); err != nil {
			return nil, err
		}
		list = []any{one}
	}
	out := make([]string, 0, len(list))
	for _, v := range list {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case bool:
			out = append(out, strconv.FormatBool(v))
		case float64:
			out = append(out, strconv.FormatFloat(v, 'f', -1, 64))
		default:
			return nil, fmt.Errorf("value %v is %T: want a string or a list of strings", v, v)
		}
	}
	return out, nil
}

// Evaluate decides req against the parsed policy.
func (p *Policy) Evaluate(req Request) Decision {
	ctx := make(map[string][]string, len(req.Context))
	for k, v := range req.Context {
		ctx[strings.ToLower(k)] = v
	}
	var allow *Statement
	var misses []string
	for i := range p.Statements {
		s := &p.Statements[i]
		why := s.applies(req, ctx)
		if why != "" {
			if s.Effect == "Allow" {
				misses = append(misses, fmt.Sprintf("statement %s: %s", s.name(), why))
			}
			continue
		}
		if s.Effect == "Deny" {
			return Decision{ExplicitDeny: true, Statement: s.name(),
				Reason: fmt.Sprintf("explicit Deny in statement %s matches the request", s.name())}
		}
		if allow == nil {
			allow = s
		}
	}
	if allow != nil {
		return Decision{Allowed: true, Statement: allow.name(),
			Reason: fmt.Sprintf("statement %s allows %s for %s", allow.name(), req.Action, req.Principal)}
	}
	reason := "no Allow statement in the trust policy"
	if len(misses) > 0 {
		reason = "no Allow statement matches: " + strings.Join(misses, "; ")
	}
	return Decision{Reason: reason}
}

func (s *Statement) name() string {
	if s.Sid != "" {
		return strconv.Quote(s.Sid)
	}
	return "#" + strconv.Itoa(s.index)
}

// applies returns "" when the statement applies to req, or why it does not.
func (s *Statement) applies(req Request, ctx map[string][]string) string {
	if s.Principal.present && !s.Principal.matches(req.Principal) {
		return fmt.Sprintf("Principal does not include %s", req.Principal)
	}
	if s.NotPrincipal.present && s.NotPrincipal.matches(req.Principal) {
		return fmt.Sprintf("NotPrincipal excludes %s", req.Principal)
	}
	if len(s.Action) > 0 && !matchAny(s.Action, req.Action, true) {
		return fmt.Sprintf("Action %v does not include %s", s.Action, req.Action)
	}
	if len(s.NotAction) > 0 && matchAny(s.NotAction, req.Action, true) {
		return fmt.Sprintf("NotAction %v excludes %s", s.NotAction, req.Action)
	}
	for _, c := range s.Conditions {
		if !c.holds(ctx) {
			got, ok := ctx[strings.ToLower(c.Key)]
			if !ok {
				return fmt.Sprintf("condition %s %s %q fails: the key is absent from the request", c.Operator, c.Key, c.Values)
			}
			return fmt.Sprintf("condition %s %s %q fails for %q", c.Operator, c.Key, c.Values, got)
		}
	}
	return ""
}

func (ps principalSet) matches(principal string) bool {
	if ps.wildcard {
		return true
	}
	for _, values := range ps.byType {
		for _, v := range values {
			if v == "*" || v == principal {
				return true
			}
		}
	}
	return false
}

// holds evaluates one condition against the request context.
func (c Condition) holds(ctx map[string][]string) bool {
	op := c.Operator
	qualifier := ""
	if i := strings.Index(op, ":"); i >= 0 {
		qualifier, op = op[:i], op[i+1:]
	}
	values, present := ctx[strings.ToLower(c.Key)]
	present = present && len(values) > 0

	if op == "Null" {
		if len(c.Values) != 1 {
			return false
		}
		want, err := strconv.ParseBool(c.Values[0])
		if err != nil {
			return false
		}
		return want == !present
	}
	ifExists := strings.HasSuffix(op, "IfExists")
	op = strings.TrimSuffix(op, "IfExists")
	match, negated, ok := stringOperator(op)
	if !ok {
		return false
	}
	// one reports whether a single request value satisfies the operator against the policy values.
	one := func(v string) bool {
		hit := false
		for _, pv := range c.Values {
			if match(pv, v) {
				hit = true
				break
			}
		}
		return hit != negated
	}
	switch qualifier {
	case "ForAnyValue":
		for _, v := range values {
			if one(v) {
				return true
			}
		}
		return false
	case "ForAllValues":
		for _, v := range values {
			if !one(v) {
				return false
			}
		}
		return true
	case "":
		if !present {
			// A negated operator holds when the key is absent; IfExists makes any operator hold.
			return ifExists || negated
		}
		if negated {
			for _, v := range values {
				if !one(v) {
					return false
				}
			}
			return true
		}
		for _, v := range values {
			if one(v) {
				return true
			}
		}
		return false
	default:
		return false
	}
}

// stringOperator returns the matcher for a string condition operator and whether it is negated.
func stringOperator(op string) (match func(policy, value string) bool, negated, ok bool) {
	switch op {
	case "StringEquals":
		return func(p, v string) bool { return p == v }, false, true
	case "StringNotEquals":
		return func(p, v string) bool { return p == v }, true, true
	case "StringEqualsIgnoreCase":
		return strings.EqualFold, false, true
	case "StringNotEqualsIgnoreCase":
		return strings.EqualFold, true, true
	case "StringLike":
		return func(p, v string) bool { return Glob(p, v, false) }, false, true
	case "StringNotLike":
		return func(p, v string) bool { return Glob(p, v, false) }, true, true
	}
	return nil, false, false
}

func matchAny(patterns []string, value string, foldCase bool) bool {
	for _, p := range patterns {
		if Glob(p, value, foldCase) {
			return true
		}
	}
	return false
}

// Glob reports whether value matches pattern, where * matches any run of characters (also none) and ? exactly one,
// as in IAM's StringLike and Action elements.
func Glob(pattern, value string, foldCase bool) bool {
	if foldCase {
		pattern, value = strings.ToLower(pattern), strings.ToLower(value)
	}
	// Characters, not bytes, so that ? matches one character; each is kept as its own bytes, so that two different
	// invalid UTF-8 bytes stay different (a []rune conversion would turn both into U+FFFD).
	p, v := chars(pattern), chars(value)
	pi, vi := 0, 0
	star, mark := -1, 0
	for vi < len(v) {
		switch {
		case pi < len(p) && p[pi] == "*":
			star, mark = pi, vi
			pi++
		case pi < len(p) && (p[pi] == "?" || p[pi] == v[vi]):
			pi++
			vi++
		case star >= 0:
			pi = star + 1
			mark++
			vi = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == "*" {
		pi++
	}
	return pi == len(p)
}

// chars splits s into its UTF-8 characters, an invalid byte being a character of its own.
func chars(s string) []string {
	out := make([]string, 0, len(s))
	for len(s) > 0 {
		_, n := utf8.DecodeRuneInString(s)
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}
