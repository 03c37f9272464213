package config

import (
	"fmt"

	"github.com/irsa-anywhere/irsa/pipeline/ack"
)

// Ref is the binding's NAMESPACE/SERVICEACCOUNT, with the namespace and ServiceAccount of its ACK controller (package
// ack) where the binding leaves them empty.
func (b Binding) Ref() string {
	b = b.withACKIdentity()
	return b.Namespace + "/" + b.ServiceAccount
}

// withACKIdentity fills an ACK binding's empty namespace and ServiceAccount from its controller's Helm chart defaults.
// An unknown service changes nothing; Validate names it.
func (b Binding) withACKIdentity() Binding {
	if b.ACK == "" {
		return b
	}
	c, err := ack.Lookup(b.ACK)
	if err != nil {
		return b
	}
	if b.Namespace == "" {
		b.Namespace = c.Namespace
	}
	if b.ServiceAccount == "" {
		b.ServiceAccount = c.ServiceAccount
	}
	return b
}

// withACKDefaults is withACKIdentity plus, when the binding names no policy of its own (no policyARNs, no
// inlinePolicy) and binds no existing role (roleARN, whose policies irsa leaves alone), the managed policy the
// controller's project recommends, in partition.
func (b Binding) withACKDefaults(partition string) Binding {
	b = b.withACKIdentity()
	if b.ACK == "" || len(b.PolicyARNs) > 0 || b.InlinePolicy != "" || b.RoleARN != "" {
		return b
	}
	if c, err := ack.Lookup(b.ACK); err == nil && c.Policy != "" {
		b.PolicyARNs = []string{c.PolicyARN(partition)}
	}
	return b
}

// validateACK checks an ACK binding: a known service, and a policy (the IAM controller's project recommends an inline
// policy, which irsa does not carry, so its binding must name one).
func (b Binding) validateACK() error {
	if b.ACK == "" {
		return nil
	}
	c, err := ack.Lookup(b.ACK)
	if err != nil {
		if b.Namespace == "" || b.ServiceAccount == "" {
			return err
		}
		return fmt.Errorf("binding %s: %w", b.Ref(), err)
	}
	if c.Policy == "" && len(b.PolicyARNs) == 0 && b.InlinePolicy == "" && b.RoleARN == "" {
		return fmt.Errorf("binding %s: ACK's %s controller has no recommended managed policy (its project recommends the inline policy in %s config/iam/recommended-inline-policy): give --policy-arn or --inline-policy (policyARNs or inlinePolicy in irsa.yaml), or --role-arn", b.Ref(), c.Service, c.Module)
	}
	return nil
}
