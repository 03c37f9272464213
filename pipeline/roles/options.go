package roles

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// diffBoundary plans the role's permissions boundary: want (a managed policy ARN), or none when want is empty. Any
// other boundary is drift and is replaced or removed.
func (m *Manager) diffBoundary(p *rolePlan, role string, r *iamtypes.Role, want string) {
	have := ""
	if r.PermissionsBoundary != nil {
		have = aws.ToString(r.PermissionsBoundary.PermissionsBoundaryArn)
	}
	switch {
	case have == want:
	case want == "":
		p.add(stage.Change{Action: stage.Delete, Kind: "iam-role-permissions-boundary", Name: role, Detail: have}, func(ctx context.Context) error {
			if _, err := m.IAM.DeleteRolePermissionsBoundary(ctx, &iam.DeleteRolePermissionsBoundaryInput{RoleName: &role}); err != nil && !awsclient.IsNotFound(err) {
				return fmt.Errorf("delete permissions boundary of IAM role %q: %w", role, err)
			}
			return nil
		})
	default:
		action, detail := stage.Create, want
		if have != "" {
			action, detail = stage.Update, have+" -> "+want
		}
		p.add(stage.Change{Action: action, Kind: "iam-role-permissions-boundary", Name: role, Detail: detail}, func(ctx context.Context) error {
			if _, err := m.IAM.PutRolePermissionsBoundary(ctx, &iam.PutRolePermissionsBoundaryInput{RoleName: &role, PermissionsBoundary: &want}); err != nil {
				return fmt.Errorf("set permissions boundary %q on IAM role %q: %w", want, role, err)
			}
			return nil
		})
	}
}

// irsaTag says whether key is one of irsa's ownership tags, or one AWS reserves (aws:...), which no binding sets.
func irsaTag(key string) bool {
	lower := strings.ToLower(key)
	return strings.HasPrefix(lower, config.ReservedTagPrefix) || lower == strings.ToLower(config.ManagedByTagKey) || strings.HasPrefix(lower, "aws:")
}

// diffTags plans the role's tags besides irsa's own: exactly want. A missing or different tag is set (one TagRole
// call), a tag the binding does not list is removed (one UntagRole call): on a role irsa owns, the binding says
// everything about it.
func (m *Manager) diffTags(p *rolePlan, role string, have []iamtypes.Tag, want map[string]string) {
	current := map[string]string{}
	for _, t := range have {
		if !irsaTag(aws.ToString(t.Key)) {
			current[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	var set []iamtypes.Tag
	var setDetail []string
	for _, k := range sortedKeys(want) {
		if v, ok := current[k]; !ok || v != want[k] {
			set = append(set, iamtypes.Tag{Key: aws.String(k), Value: aws.String(want[k])})
			setDetail = append(setDetail, k+"="+want[k])
		}
	}
	var unset []string
	for _, k := range sortedKeys(current) {
		if _, ok := want[k]; !ok {
			unset = append(unset, k)
		}
	}
	if len(set) > 0 {
		p.add(stage.Change{Action: stage.Update, Kind: "iam-role-tags", Name: role, Detail: "set " + strings.Join(setDetail, ", ")}, func(ctx context.Context) error {
			if _, err := m.IAM.TagRole(ctx, &iam.TagRoleInput{RoleName: &role, Tags: set}); err != nil {
				return fmt.Errorf("tag IAM role %q: %w", role, err)
			}
			return nil
		})
	}
	if len(unset) > 0 {
		p.add(stage.Change{Action: stage.Delete, Kind: "iam-role-tags", Name: role, Detail: strings.Join(unset, ", ")}, func(ctx context.Context) error {
			if _, err := m.IAM.UntagRole(ctx, &iam.UntagRoleInput{RoleName: &role, TagKeys: unset}); err != nil && !awsclient.IsNotFound(err) {
				return fmt.Errorf("untag IAM role %q: %w", role, err)
			}
			return nil
		})
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
