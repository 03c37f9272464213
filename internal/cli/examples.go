package cli

import "github.com/spf13/cobra"

// examples are shown in each command's help, copy-pasteable as they stand.
var examples = map[string]string{
	"plan": `  # What apply would change, exit 2 if anything
  irsa plan -f irsa.yaml --kubeconfig ~/.kube/config
  # The AWS side only, as JSON
  irsa plan --cluster-name prod --region eu-west-1 --bucket prod-oidc --only keys,issuer,provider -o json`,
	"apply": `  # Everything, on the cluster of the current kubeconfig context
  irsa apply --cluster-name prod --region eu-west-1 --bucket prod-oidc
  # From a file, with the proof run even if nothing changed
  irsa apply -f irsa.yaml --verify
  # Where S3 Block Public Access is on: a private bucket behind CloudFront, on a domain of your own
  irsa apply --cluster-name prod --region eu-west-1 --bucket prod-oidc --issuer-hosting cloudfront --issuer-domain oidc.prod.example.com`,
	"teardown": `  # Remove what irsa made (asks first on a terminal)
  irsa teardown -f irsa.yaml
  # In a script, after the cluster is gone
  irsa teardown -f irsa.yaml --aws-only --yes`,
	"status": `  irsa status -f irsa.yaml
  irsa status -f irsa.yaml -o yaml
  # In CI: exit status 2 when the setup has drifted, 0 when in sync
  irsa status -f irsa.yaml -q`,
	"bind": `  # An application's ServiceAccount gets a role that can read S3
  irsa bind apps/uploader --policy-arn arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess -f irsa.yaml
  # With an inline policy and a one-hour token
  irsa bind apps/uploader --inline-policy policy.json --token-expiration 1h -f irsa.yaml
  # A ServiceAccount that does not exist yet: irsa creates it (and its namespace)
  irsa bind apps/worker --create-service-account --policy-arn arn:aws:iam::aws:policy/AmazonSQSReadOnlyAccess -f irsa.yaml
  # One role for the same ServiceAccount in two clusters, with a boundary and tags
  irsa bind apps/uploader --policy-arn arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess -f irsa.yaml \
    --trust-provider https://prod-b-oidc.s3.eu-west-1.amazonaws.com \
    --permissions-boundary arn:aws:iam::123456789012:policy/team-boundary --tag team=payments
  # A role the platform team made: irsa adds only its trust statement
  irsa bind apps/uploader --role-arn arn:aws:iam::123456789012:role/platform/uploader -f irsa.yaml
  # The ACK S3 controller installed by its Helm chart in ack-system, then restarted with its web identity
  irsa bind --ack s3 -f irsa.yaml && irsa heal -f irsa.yaml`,
	"bindings": `  # Every binding of the cluster, with its role, policies and checks
  irsa bindings -f irsa.yaml
  # In a script: exit 2 when a binding's annotation, role or trust disagree
  irsa bindings -f irsa.yaml -o json`,
	"unbind": `  irsa unbind apps/uploader -f irsa.yaml
  irsa unbind apps/uploader -f irsa.yaml --yes
  # A role bound with --role-arn keeps everything but irsa's trust statement
  irsa unbind apps/uploader --role-arn arn:aws:iam::123456789012:role/platform/uploader -f irsa.yaml`,
	"verify": `  irsa verify -f irsa.yaml
  irsa verify -f irsa.yaml --keep -o json`,
	"doctor": `  # The whole chain, link by link
  irsa doctor -f irsa.yaml
  # One ServiceAccount, calling STS for real
  irsa doctor apps/uploader -f irsa.yaml --live`,
	"keys": `  irsa keys --out ./keys`,
	"jwks": `  irsa jwks --public-key ./keys/sa-signer.pub > keys.json
  # During a key rotation, both keys
  irsa jwks --public-key old.pub --public-key new.pub`,
	"heal": `  # Pods of bound ServiceAccounts that run without their web identity, and the owners to restart
  irsa doctor --pods -f irsa.yaml
  # Restart those owners (asks first on a terminal)
  irsa heal -f irsa.yaml`,
	"images": `  irsa images -f irsa.yaml
  irsa images -f irsa.yaml --image-registry mirror.example:5000`,
	"sync": `  # Publish the keys the cluster serves (after doctor reports a key the JWKS lacks)
  irsa sync -f irsa.yaml
  # Remove a predecessor cluster's key once no token it signed is in use
  irsa sync -f irsa.yaml --retire KID --yes
  # Keep the JWKS in sync from inside the cluster, every 10 minutes
  irsa sync -f irsa.yaml --install`,
	"rotate-key": `  # Publish and accept a new key, then sign with it, then (a day later) retire the previous one
  irsa rotate-key stage -f irsa.yaml
  irsa rotate-key promote -f irsa.yaml
  irsa rotate-key retire -f irsa.yaml --dry-run
  irsa rotate-key retire -f irsa.yaml --yes`,
	"version":     `  irsa version -o json`,
	"kind-config": `  irsa kind-config --bucket prod-oidc --region eu-west-1 > kind.yaml && kind create cluster --config kind.yaml`,
}

// addExamples sets each command's example from examples.
func addExamples(root *cobra.Command) {
	for _, c := range root.Commands() {
		if ex, ok := examples[c.Name()]; ok && c.Example == "" {
			c.Example = ex
		}
	}
}
