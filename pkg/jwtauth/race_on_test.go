//go:build race

package jwtauth

// raceDetector: under -race, sync.Pool drops a random quarter of what is
// put back, so a path that takes its scratch from the pool allocates now and
// then; allocation counts of such paths are asserted without -race only
// (scripts/test.sh runs the *Allocat* tests once more without it).
const raceDetector = true
