//go:build tools

// Package tools pins amazon-eks-pod-identity-webhook, built from source for the host-cluster e2e.
package tools

import _ "github.com/aws/amazon-eks-pod-identity-webhook"
