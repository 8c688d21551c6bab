package store

import "os"

// SpoolBytes returns the size of the spool file on disk: results waiting for
// the database, plus replayed ones not yet truncated away. It takes no lock,
// so a metrics scrape never waits for a write.
func (s *Store) SpoolBytes() int64 {
	if s.spool == nil {
		return 0
	}
	fi, err := os.Stat(s.spool.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
