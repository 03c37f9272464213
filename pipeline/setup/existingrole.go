package setup

import (
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
)

// existingRoleSummary says what unbinding b takes off r, a role irsa does not own: its own trust statements for b, or
// nothing (another irsa cluster's role, or no statement of b's left).
func existingRoleSummary(e *Env, b config.Binding, r *iamtypes.Role) string {
	if roles.OtherClusterRole(b.RoleARN, e.Target.ClusterName) {
		return ""
	}
	doc, _ := url.QueryUnescape(aws.ToString(r.AssumeRolePolicyDocument))
	if _, changed, err := roles.MergeTrust(doc, roles.BindingSid(e.Target.ClusterName, b.Namespace, b.ServiceAccount), nil); err != nil || !changed {
		return ""
	}
	return fmt.Sprintf("irsa's trust statements for %s/%s on IAM role %s (the role, its other statements and its policies stay)", b.Namespace, b.ServiceAccount, b.RoleARN)
}
