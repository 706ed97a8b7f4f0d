package envconf

import "errors"

// Faults collects a loader's configuration faults so that one start
// reports every one of them (errors.Join), not the first: each fault is
// an error that starts with its variable's name and never shows a secret.
// The zero value is ready.
type Faults struct {
	errs []error
}

// Add records err unless it is nil, and reports whether it was nil (the
// value it came with is usable: checks that depend on it may run).
func (f *Faults) Add(err error) bool {
	if err == nil {
		return true
	}
	f.errs = append(f.errs, err)
	return false
}

// Err joins the faults in the order they were found (nil when there are
// none); errors.Join's Unwrap() []error lists them.
func (f *Faults) Err() error { return errors.Join(f.errs...) }
