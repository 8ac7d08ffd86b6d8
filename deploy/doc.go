// Package deploy holds maasgate's deployment files: Kubernetes manifests in
// kubernetes/, an OpenShift Route in openshift/, a Grafana dashboard in
// grafana/, and tests that check them (and the repository's Containerfile)
// against the Kubernetes API types and against the gateway itself.
// docs/deploy.md explains them; docs/observability.md the dashboard.
package deploy
