// Package apikey is the edge's side of edgeguard's API keys: the sk_ key
// format with its checksum (so garbage is refused with no I/O), the stored form
// (HMAC-SHA-256 with a rotatable server pepper), and the Validator client the
// keycloak-apikey plugin uses to ask llm-api whether a key is valid, with a
// bounded cache (positive and negative), single flight per key, a global cap
// on validator calls in flight, a per-client limit on failed authentications,
// an optional shared Redis layer and revocation over Redis pub/sub.
//
// Key format: "sk_" + an optional environment tag ("live_" or "test_") + 32
// base62 characters from crypto/rand (190 bits) + 6 base62 characters of the
// CRC32 (IEEE) of everything before them. The key id (KID) is the first 8
// characters of the random part: public, safe to log, unique in the database.
//
// It is not the key store: llm-api owns the keys in PostgreSQL, checks them
// (with Peppers from this package) and answers the internal validate endpoint
// (docs/contracts.md). Nothing here reads files or the environment; secrets
// (peppers, the internal token) are passed in as bytes and never printed.
package apikey
