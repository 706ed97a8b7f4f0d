// Package e2e holds the end-to-end suites that run against real components
// started by scripts/test.sh (Keycloak from scripts/keycloak.sh, Redis,
// PostgreSQL): the realm in keycloak/realm-jan.json as Keycloak actually
// serves it, verified with pkg/jwtauth against the live JWKS; and the stack
// `make dev` runs (scripts/dev.sh) driven through the real Kong with curl
// and the official openai SDK, with Keycloak, Redis and the validate
// endpoint taken away mid-run (README.md).
//
// Each suite reads its component's address from the environment; without it
// the suite skips locally and fails under CI=true. It is not a place for unit
// tests: those live next to the code they test.
package e2e
