package apikey

import "sync"

var registry = struct {
	sync.Mutex
	validators map[string]*Validator
}{validators: map[string]*Validator{}}

// Shared returns the process-wide Validator for cfg, creating it on first
// use: Kong creates a new plugin instance on every config change and serves
// many requests on one instance, so the cache, the failure counts and the
// revocation subscriber live at process level, keyed by the configuration
// (URL, a hash of the internal token, every limit and TTL, the Redis client
// and key prefix). HTTPClient, Logger and Now of the first caller win. Share
// one Redis client per Redis configuration, or each config change starts
// another subscriber. Shared validators are never closed.
func Shared(cfg Config) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	fp := cfg.fingerprint()
	registry.Lock()
	defer registry.Unlock()
	if v := registry.validators[fp]; v != nil {
		return v, nil
	}
	v, err := NewValidator(cfg)
	if err != nil {
		return nil, err
	}
	registry.validators[fp] = v
	return v, nil
}

// SharedValidators returns every process-wide validator (for metrics).
func SharedValidators() []*Validator {
	registry.Lock()
	defer registry.Unlock()
	out := make([]*Validator, 0, len(registry.validators))
	for _, v := range registry.validators {
		out = append(out, v)
	}
	return out
}
