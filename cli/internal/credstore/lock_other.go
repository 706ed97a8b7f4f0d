//go:build !unix

package credstore

import "context"

// Lock is a no-op where flock does not exist; concurrent refreshes may then
// spend the same refresh token twice, and the loser logs in again.
func (s *Store) Lock(ctx context.Context, server string) (unlock func(), err error) {
	if err := s.ensureDir(); err != nil {
		return nil, err
	}
	return func() {}, nil
}
