package edgeproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"

	"github.com/incus-appliance/registry/internal/atomicfile"
)

// serialsFile, in the state folder, keeps the registry_serial of each
// signed catalog document last verified, so that a restarted proxy still
// refuses an older one.
const serialsFile = "catalog-serials.json"

// serialStore is the last verified serial of each signed document (by its
// .sjson path), kept in a file: a JSON object, replaced whole (written
// beside it, synced, renamed over it).
type serialStore struct {
	path string

	mu      sync.Mutex
	serials map[string]int64
}

// loadSerials reads the store at path; a missing file is an empty store.
func loadSerials(path string) (*serialStore, error) {
	s := &serialStore{path: path, serials: map[string]int64{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("catalog serials: %w", err)
	}
	if err := json.Unmarshal(data, &s.serials); err != nil {
		return nil, fmt.Errorf("catalog serials: %s: %w (remove it to accept the registry's current serials)", path, err)
	}
	return s, nil
}

// last is the serial last verified of the document at path (0: none).
func (s *serialStore) last(path string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serials[path]
}

// advance records the serials of newly verified documents (none lower than
// recorded: the caller refused those) and writes the file when one grew.
func (s *serialStore) advance(serials map[string]int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := maps.Clone(s.serials)
	grew := false
	for p, n := range serials {
		if n > next[p] {
			next[p], grew = n, true
		}
	}
	if !grew {
		return nil
	}
	if err := writeJSONAtomic(s.path, next); err != nil {
		return fmt.Errorf("catalog serials: %w", err)
	}
	s.serials = next
	return nil
}

// writeJSONAtomic writes v as JSON to path (atomicfile: a crash leaves
// the old file or the new one), making its folder first.
func writeJSONAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o600)
}
