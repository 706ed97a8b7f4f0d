// Package kong holds the tests that need the real Kong 3.9: the plugins'
// configuration as Kong sends it (captured into the decode fixtures of
// plugins/internal/kongjson), every plugin's full schema in a `kong start`,
// DB-less reloads and a killed plugin server under load, the PDK calls per
// request counted by the plugin servers themselves, and response headers
// that must not reach clients. Kong is started with scripts/kong.sh (as a
// non-root user, on loopback ports); see README.md.
//
// It is for tests only: the package has no code outside its tests but the
// config-capture plugin server in cmd/kongcapture.
package kong
