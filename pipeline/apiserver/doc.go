// Package apiserver makes a cluster's kube-apiserver issue service account tokens for the irsa issuer.
//
// On kubeadm clusters it patches each control-plane node's static pod manifest (Patch, through PatchNode run in a
// short-lived pod pinned to the node), one node at a time, keeping the previous issuers and keys valid so that
// tokens pods already hold keep working. On EKS Anywhere it sets the Cluster object's podIamConfig; on kind and
// external clusters it only verifies what the apiserver serves.
package apiserver
