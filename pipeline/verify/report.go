package verify

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
	corev1 "k8s.io/api/core/v1"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// Check names, in the order a report lists them.
const (
	CheckPod         = "pod-succeeded"
	CheckInjectedEnv = "role-env-injected"
	CheckTokenVolume = "token-volume-projected"
	CheckCaller      = "caller-is-assumed-role"
	CheckBucket      = "issuer-bucket-listed"
)

// Check is one condition of a PASS.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Report is the outcome of one verification: PASS only if every check is OK. Events and Logs are filled on failure.
type Report struct {
	Pass           bool     `json:"pass"`
	ServiceAccount string   `json:"serviceAccount"`
	RoleARN        string   `json:"roleARN"`
	Pod            string   `json:"pod,omitempty"`
	CallerARN      string   `json:"callerARN,omitempty"`
	Buckets        []string `json:"buckets,omitempty"`
	Checks         []Check  `json:"checks"`
	Events         []string `json:"events,omitempty"`
	Logs           string   `json:"logs,omitempty"`
}

// Expect is what a passing run shows.
type Expect struct {
	// RoleARN is the role bound to the verify ServiceAccount.
	RoleARN string
	// Audience the projected token must carry.
	Audience string
	// Bucket is the issuer bucket the listing must contain.
	Bucket string
	// Container is the verify container's name.
	Container string
}

// Output is what the verify command printed: `aws sts get-caller-identity --output json` then `aws s3 ls`
// (or `irsa probe`, which prints the same).
type Output struct {
	UserID  string   `json:"UserId"`
	Account string   `json:"Account"`
	Arn     string   `json:"Arn"`
	Buckets []string `json:"-"`
}

var bucketLine = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} (\S+)$`)

// ParseOutput reads the caller identity JSON and the bucket lines from the logs. Other lines (warnings, errors) are
// skipped; a missing identity is an error that quotes the logs' start.
func ParseOutput(logs string) (Output, error) {
	var out Output
	found := false
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var obj bytes.Buffer
	depth := 0
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case depth > 0 || (!found && strings.HasPrefix(strings.TrimSpace(line), "{")):
			obj.WriteString(line + "\n")
			depth += strings.Count(line, "{") - strings.Count(line, "}")
			if depth == 0 {
				if err := json.Unmarshal(obj.Bytes(), &out); err != nil {
					return out, fmt.Errorf("parse caller identity %q: %w", obj.String(), err)
				}
				found = true
			}
		case bucketLine.MatchString(line):
			out.Buckets = append(out.Buckets, bucketLine.FindStringSubmatch(line)[1])
		}
	}
	if !found || out.Arn == "" {
		return out, fmt.Errorf("no caller identity in the output (first line: %q)", firstLine(logs))
	}
	return out, nil
}

// AssumedRoleARN is the caller ARN STS reports for a session of roleARN, without the session name:
// arn:aws:iam::111122223333:role/path/name → arn:aws:sts::111122223333:assumed-role/name.
func AssumedRoleARN(roleARN string) (string, error) {
	role, err := arn.Parse(roleARN)
	pathAndName, isRole := strings.CutPrefix(role.Resource, "role/")
	if err != nil || role.Service != "iam" || !isRole || pathAndName == "" {
		return "", fmt.Errorf("role ARN %q: want arn:PARTITION:iam::ACCOUNT:role/NAME", roleARN)
	}
	return arn.ARN{Partition: role.Partition, Service: "sts", AccountID: role.AccountID, Resource: "assumed-role/" + path.Base(pathAndName)}.String(), nil
}

// Evaluate decides PASS from the pod as the apiserver stored it (after the webhook mutated it) and its logs.
func Evaluate(pod *corev1.Pod, logs string, want Expect) Report {
	r := Report{RoleARN: want.RoleARN}
	add := func(name string, ok bool, detail string, args ...any) {
		r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(detail, args...)})
	}
	if pod == nil {
		add(CheckPod, false, "no verify pod was created")
		add(CheckInjectedEnv, false, "no pod")
		add(CheckTokenVolume, false, "no pod")
	} else {
		r.Pod = pod.Namespace + "/" + pod.Name
		r.ServiceAccount = pod.Namespace + "/" + pod.Spec.ServiceAccountName
		if pod.Status.Phase == corev1.PodSucceeded {
			add(CheckPod, true, "pod %s succeeded", pod.Name)
		} else {
			add(CheckPod, false, "pod %s is %s%s", pod.Name, pod.Status.Phase, containerState(pod, want.Container))
		}
		ok, detail := injectedEnv(pod, want)
		add(CheckInjectedEnv, ok, "%s", detail)
		ok, detail = tokenVolume(pod, want)
		add(CheckTokenVolume, ok, "%s", detail)
	}

	out, err := ParseOutput(logs)
	r.CallerARN, r.Buckets = out.Arn, out.Buckets
	if err != nil {
		add(CheckCaller, false, "%v", err)
	} else if prefix, perr := AssumedRoleARN(want.RoleARN); perr != nil {
		add(CheckCaller, false, "%v", perr)
	} else if strings.HasPrefix(out.Arn, prefix+"/") {
		add(CheckCaller, true, "%s", out.Arn)
	} else {
		add(CheckCaller, false, "caller %s, want a session of %s (the pod did not use the web identity token)", out.Arn, prefix)
	}
	switch {
	case want.Bucket == "":
		add(CheckBucket, false, "no issuer bucket given")
	case slices.Contains(out.Buckets, want.Bucket):
		add(CheckBucket, true, "%s among %d buckets", want.Bucket, len(out.Buckets))
	default:
		add(CheckBucket, false, "%s not among the %d listed buckets %v", want.Bucket, len(out.Buckets), out.Buckets)
	}

	r.Pass = true
	for _, c := range r.Checks {
		r.Pass = r.Pass && c.OK
	}
	if !r.Pass {
		r.Logs = logs
	}
	return r
}

func verifyContainer(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if name == "" || pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

func containerState(pod *corev1.Pod, name string) string {
	for _, s := range pod.Status.ContainerStatuses {
		if name != "" && s.Name != name {
			continue
		}
		switch {
		case s.State.Terminated != nil:
			t := s.State.Terminated
			return fmt.Sprintf(" (container exited %d: %s)", t.ExitCode, strings.TrimSpace(t.Reason+" "+t.Message))
		case s.State.Waiting != nil:
			return fmt.Sprintf(" (container waiting: %s)", strings.TrimSpace(s.State.Waiting.Reason+" "+s.State.Waiting.Message))
		}
	}
	return ""
}

func injectedEnv(pod *corev1.Pod, want Expect) (bool, string) {
	c := verifyContainer(pod, want.Container)
	if c == nil {
		return false, fmt.Sprintf("no container %q in the pod", want.Container)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	wantFile := path.Join(config.TokenMountPath, config.TokenFile)
	var problems []string
	if got, ok := env["AWS_ROLE_ARN"]; !ok {
		problems = append(problems, "AWS_ROLE_ARN missing")
	} else if got != want.RoleARN {
		problems = append(problems, fmt.Sprintf("AWS_ROLE_ARN=%s, want %s", got, want.RoleARN))
	}
	if got, ok := env["AWS_WEB_IDENTITY_TOKEN_FILE"]; !ok {
		problems = append(problems, "AWS_WEB_IDENTITY_TOKEN_FILE missing")
	} else if got != wantFile {
		problems = append(problems, fmt.Sprintf("AWS_WEB_IDENTITY_TOKEN_FILE=%s, want %s", got, wantFile))
	}
	if len(problems) > 0 {
		return false, strings.Join(problems, "; ") + ": is the pod identity webhook running and does it see the ServiceAccount's annotation?"
	}
	return true, fmt.Sprintf("AWS_ROLE_ARN=%s AWS_WEB_IDENTITY_TOKEN_FILE=%s", want.RoleARN, wantFile)
}

func tokenVolume(pod *corev1.Pod, want Expect) (bool, string) {
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == config.TokenVolume {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.Projected == nil {
		return false, fmt.Sprintf("no projected volume %q", config.TokenVolume)
	}
	var audiences []string
	found := false
	for _, src := range vol.Projected.Sources {
		if t := src.ServiceAccountToken; t != nil {
			audiences = append(audiences, t.Audience)
			if t.Audience == want.Audience && t.Path == config.TokenFile {
				found = true
			}
		}
	}
	if !found {
		return false, fmt.Sprintf("volume %s has token audiences %q, want %q at path %s", config.TokenVolume, audiences, want.Audience, config.TokenFile)
	}
	c := verifyContainer(pod, want.Container)
	if c == nil {
		return false, fmt.Sprintf("no container %q in the pod", want.Container)
	}
	for _, m := range c.VolumeMounts {
		if m.Name == config.TokenVolume && m.MountPath == config.TokenMountPath {
			return true, fmt.Sprintf("audience %s mounted at %s", want.Audience, config.TokenMountPath)
		}
	}
	return false, fmt.Sprintf("volume %s is not mounted at %s in container %s", config.TokenVolume, config.TokenMountPath, c.Name)
}

// Text renders the report for people: a verdict line, one line per check, then events and logs on failure.
func (r Report) Text() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "verify: %s  service account %s, role %s\n", verdict, r.ServiceAccount, r.RoleARN)
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  [%s] %-24s %s\n", mark, c.Name, c.Detail)
	}
	if len(r.Events) > 0 {
		b.WriteString("events:\n")
		for _, e := range r.Events {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	if r.Logs != "" {
		b.WriteString("logs:\n")
		for _, l := range strings.Split(strings.TrimRight(r.Logs, "\n"), "\n") {
			fmt.Fprintf(&b, "  | %s\n", l)
		}
	}
	return b.String()
}

// JSON renders the report as indented JSON: the stable machine-readable form.
func (r Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Failed lists the names of the checks that failed.
func (r Report) Failed() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return out
}

// firstLine is the first non-blank line, cut at 200 bytes: usually the error the command printed.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > 200 {
				l = l[:200] + "..."
			}
			return l
		}
	}
	return ""
}
