package cli

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
)

// A role that serves another ServiceAccount, or that apply would refuse (another path, no ServiceAccount tag), is
// never rewritten by bind, deleted by unbind, or deleted by teardown; teardown reports it as kept.
func TestRoleOwnershipDecoys(t *testing.T) {
	e := newEnv(t)
	c := clients(t)
	ctx := context.Background()
	e.mustRun("apply")
	const policy = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
	e.mustRun("bind", "default/app", "--policy-arn", policy)
	appRole := "irsa-" + e.cluster + "-default-app"
	trustBefore := trustOf(t, c, appRole)

	// --role-name cannot take over default/app's role, and unbind through it removes nothing.
	code, _, errOut := e.run("bind", "team/other", "--policy-arn", "arn:aws:iam::aws:policy/AdministratorAccess", "--role-name", appRole)
	if code != 1 || !strings.Contains(errOut, `serves service account "default/app"`) {
		t.Errorf("bind takeover: exit %d, stderr %s", code, errOut)
	}
	code, _, errOut = e.run("unbind", "team/other", "--role-name", appRole, "--yes")
	if code != 1 || !strings.Contains(errOut, `serves service account "default/app"`) {
		t.Errorf("unbind takeover: exit %d, stderr %s", code, errOut)
	}
	if got := trustOf(t, c, appRole); got != trustBefore {
		t.Errorf("trust policy of %s rewritten:\n%s", appRole, got)
	}
	att, _ := c.IAM.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: &appRole})
	if len(att.AttachedPolicies) != 1 || aws.ToString(att.AttachedPolicies[0].PolicyArn) != policy {
		t.Errorf("policies of %s changed: %+v", appRole, att.AttachedPolicies)
	}

	// Decoys tagged for this cluster that apply would refuse to manage.
	tags := func(sa string) []iamtypes.Tag {
		t := []iamtypes.Tag{{Key: aws.String(config.OwnerTagKey), Value: aws.String(e.cluster)}}
		if sa != "" {
			t = append(t, iamtypes.Tag{Key: aws.String(roles.ServiceAccountTagKey), Value: aws.String(sa)})
		}
		return t
	}
	decoys := map[string]*iam.CreateRoleInput{
		"wrong path":             {RoleName: aws.String("irsa-" + e.cluster + "-x-y"), Path: aws.String("/other/"), Tags: tags("x/y")},
		"no service account tag": {RoleName: aws.String("decoy-nosa-" + e.cluster), Path: aws.String(roles.Path(e.cluster)), Tags: tags("")},
		"other cluster's tag": {RoleName: aws.String("decoy-other-" + e.cluster), Path: aws.String(roles.Path(e.cluster)),
			Tags: []iamtypes.Tag{{Key: aws.String(config.OwnerTagKey), Value: aws.String(e.cluster + "x")}, {Key: aws.String(roles.ServiceAccountTagKey), Value: aws.String("a/b")}}},
	}
	for _, in := range decoys {
		in.AssumeRolePolicyDocument = aws.String(`{"Version":"2012-10-17","Statement":[]}`)
		if _, err := c.IAM.CreateRole(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	code, _, errOut = e.run("unbind", "x/y", "--yes")
	if code != 1 || !strings.Contains(errOut, "has path \"/other/\"") {
		t.Errorf("unbind of a role on another path: exit %d, stderr %s", code, errOut)
	}

	out := e.mustRun("teardown", "--yes", "--aws-only")
	for what, in := range decoys {
		if _, err := c.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: in.RoleName}); err != nil {
			t.Errorf("teardown deleted the %s decoy %s: %v", what, aws.ToString(in.RoleName), err)
		}
	}
	if !strings.Contains(out, "= iam-role decoy-nosa-"+e.cluster) {
		t.Errorf("teardown does not report the kept role:\n%s", out)
	}
	if _, err := c.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &appRole}); !awsclient.IsNotFound(err) {
		t.Errorf("teardown left irsa's own role %s (err %v)", appRole, err)
	}
}

func trustOf(t *testing.T, c *awsclient.Clients, role string) string {
	t.Helper()
	out, err := c.IAM.GetRole(context.Background(), &iam.GetRoleInput{RoleName: &role})
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := url.QueryUnescape(aws.ToString(out.Role.AssumeRolePolicyDocument))
	return doc
}
