// Package deploy holds maasgate's deployment files: Kubernetes manifests in
// kubernetes/, an OpenShift Route in openshift/, and tests that check them
// (and the repository's Containerfile) against the Kubernetes API types and
// against the gateway itself. docs/deploy.md explains them.
package deploy
