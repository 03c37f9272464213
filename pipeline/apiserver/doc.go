// Package apiserver is the apiserver stage: it makes a cluster's kube-apiserver issue service account tokens for
// the irsa issuer. This package is the part that runs on the operator's machine; each cluster type is a platform
// with the stage's Plan, Apply and Delete:
//   - kubeadm (kubeadm.go, nodepod.go): each control-plane node's static pod manifest is patched by a short-lived
//     pod pinned to the node, one node at a time, keeping the previous issuers, audiences and keys accepted so
//     that tokens pods already hold keep working. With several control-plane nodes it goes in two passes: every
//     apiserver first accepts irsa's tokens, then each starts issuing them, so a token issued by a patched
//     apiserver never meets one that rejects it; Delete demotes everywhere before removing.
//   - EKS Anywhere (eksanywhere.go): the Cluster object's podIamConfig is set; EKS Anywhere rolls the nodes.
//   - kind (kind.go) and external (external.go): irsa only verifies what the apiserver serves (verifyonly.go).
//
// Detection of the cluster type and what the apiserver serves are in served.go. The code that runs ON a node,
// inside the node pod (`irsa node patch-apiserver`: the manifest write, the node-local check, the rollback), is
// package apiserver/node; the manifest edits both sides use are package apiserver/manifest.
package apiserver
