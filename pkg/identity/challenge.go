package identity

// Codes of the answers to a request whose credential is missing or
// ambiguous, the same at the edge (plugins/internal/auth) and in the
// services (pkg/edgehttp).
const (
	CodeCredentialMissing    = "credential_missing"
	CodeDuplicateCredentials = "duplicate_credentials"
)

// RFC 6750 §3.1 error attributes of a Bearer challenge.
const (
	ChallengeInvalidRequest    = "invalid_request"
	ChallengeInvalidToken      = "invalid_token"
	ChallengeInsufficientScope = "insufficient_scope"
)

// Challenge is the WWW-Authenticate value of a Bearer realm, with the
// RFC 6750 error attribute errAttr ("" for none: no credential was sent).
func Challenge(realm, errAttr string) string {
	c := `Bearer realm="` + realm + `"`
	if errAttr != "" {
		c += `, error="` + errAttr + `"`
	}
	return c
}
