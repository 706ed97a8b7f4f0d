// Package deploy holds the static tests of edgeguard's deployment files —
// kong/kong.conf and kong/Dockerfile, compose/docker-compose.yml, the k8s/
// kustomize base, docker/ — and the check that config/README.md documents
// exactly the variables the code reads. Docker, Kong and a Kubernetes cluster
// cannot run here, so these tests read the files and assert what
// docs/architecture.md requires of them (networks, published ports, secrets as files, non-root,
// read-only root filesystems, limits, probes, default-deny policies).
//
// Subpackage secretgen and cmd/gen-secrets generate the secret files a
// deployment mounts (compose/gen-secrets.sh). Nothing here is imported by
// the services.
package deploy
