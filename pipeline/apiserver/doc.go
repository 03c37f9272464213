// Package apiserver makes a cluster's kube-apiserver issue service account tokens for the irsa issuer.
//
// On kubeadm clusters it patches each control-plane node's static pod manifest (Patch, through RunNode in a
// short-lived pod pinned to the node), one node at a time, keeping the previous issuers, audiences and keys
// accepted so that tokens pods already hold keep working. With several control-plane nodes it goes in two passes:
// every apiserver first accepts irsa's tokens (PatchOptions.AcceptOnly), then each starts issuing them, so a token
// issued by a patched apiserver never meets one that rejects it; Delete demotes everywhere before removing. The
// node pod checks its own apiserver after the kubelet restarts it and puts the previous manifest back if that
// fails. On EKS Anywhere it sets the Cluster object's podIamConfig; on kind and external clusters it only verifies
// what the apiserver serves.
package apiserver
