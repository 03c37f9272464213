// Package webhook deploys amazon-eks-pod-identity-webhook: the manifests in fixtures/webhook filled in and applied
// with server-side apply, and the webhook's TLS from a CA irsa keeps itself (no cert-manager, no CSR API).
package webhook
