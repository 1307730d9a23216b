// Package deploy holds what runs sluice outside a developer's machine: the
// Dockerfile, the Kubernetes manifests (kubernetes/), the systemd unit and
// README.md. It has no code; its test checks that these files agree with
// each other and with the binary they run (flags, environment variables,
// ports, probes, image names).
package deploy
