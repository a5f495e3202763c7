package catalog

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// MaxCommits is how many recent commit ids the catalog remembers.
const MaxCommits = 128

func (c *Catalog) state() *State {
	if c.State == nil {
		c.State = &State{}
	}
	return c.State
}

// tidyState drops an empty State so that it is omitted from the JSON.
func (c *Catalog) tidyState() {
	s := c.State
	if s != nil && len(s.Commits) == 0 && len(s.Pending) == 0 && len(s.Retired) == 0 && s.Pruning == nil && s.Shards == 0 {
		c.State = nil
	}
}

// RecordCommit remembers a commit id (keeping the newest MaxCommits) and
// drops pending intents that expired before now.
func (c *Catalog) RecordCommit(id string, now time.Time) {
	s := c.state()
	s.Commits = append(s.Commits, Commit{ID: id, At: now.UTC().Truncate(time.Second)})
	if n := len(s.Commits) - MaxCommits; n > 0 {
		s.Commits = slices.Clone(s.Commits[n:])
	}
	s.Pending = slices.DeleteFunc(s.Pending, func(p Pending) bool { return !now.Before(p.Expires) })
	c.tidyState()
}

// HasCommit reports whether commit id is among the remembered commits.
func (c *Catalog) HasCommit(id string) bool {
	return c.State != nil && slices.ContainsFunc(c.State.Commits, func(x Commit) bool { return x.ID == id })
}

// AddPending records a publisher's intent (replacing one with the same id).
func (c *Catalog) AddPending(p Pending) error {
	if p.ID == "" || p.Product == "" {
		return fmt.Errorf("pending intent needs an id and a product")
	}
	for _, path := range p.Paths {
		if err := checkPath(path); err != nil {
			return err
		}
	}
	p.Expires = p.Expires.UTC().Truncate(time.Second)
	c.RemovePending(p.ID)
	c.state().Pending = append(c.state().Pending, p)
	return nil
}

// RemovePending drops the intent with the given id, if present.
func (c *Catalog) RemovePending(id string) {
	if c.State == nil {
		return
	}
	c.State.Pending = slices.DeleteFunc(c.State.Pending, func(p Pending) bool { return p.ID == id })
	c.tidyState()
}

// LivePending returns the intents that have not expired at now.
func (c *Catalog) LivePending(now time.Time) []Pending {
	if c.State == nil {
		return nil
	}
	var out []Pending
	for _, p := range c.State.Pending {
		if now.Before(p.Expires) {
			out = append(out, p)
		}
	}
	return out
}

// indexProducts is the product list index.json should carry: every product
// of the catalog plus those of live pending intents, so that a publisher
// stopped between its two writes never leaves index.json short of a
// product that images.json has.
func (c *Catalog) indexProducts(now time.Time) []string {
	keys := c.ProductKeys()
	for _, p := range c.LivePending(now) {
		keys = append(keys, p.Product)
	}
	return sortedSet(keys)
}

// retire marks path as no longer referenced since now.
func (c *Catalog) retire(path string, now time.Time) {
	s := c.state()
	if s.Retired == nil {
		s.Retired = map[string]time.Time{}
	}
	if _, ok := s.Retired[path]; !ok {
		s.Retired[path] = now.UTC().Truncate(time.Second)
	}
}

// unretire forgets the retirement of paths that are referenced again.
func (c *Catalog) unretire(paths ...string) {
	if c.State == nil {
		return
	}
	for _, p := range paths {
		delete(c.State.Retired, p)
	}
	c.tidyState()
}

// LivePruning returns the prune in progress at now, or nil.
func (c *Catalog) LivePruning(now time.Time) *Pruning {
	if c.State == nil || c.State.Pruning == nil || !now.Before(c.State.Pruning.Deadline) {
		return nil
	}
	return c.State.Pruning
}

// BeginPrune records that prune id may delete paths until deadline. It
// fails when another prune is still live.
func (c *Catalog) BeginPrune(id string, paths []string, deadline, now time.Time) error {
	if live := c.LivePruning(now); live != nil && live.ID != id {
		return fmt.Errorf("another prune (%s) is running until %s", live.ID, live.Deadline.Format(time.RFC3339))
	}
	c.state().Pruning = &Pruning{ID: id, Deadline: deadline.UTC().Truncate(time.Second), Paths: sortedSet(paths)}
	return nil
}

// EndPrune clears prune id's record and forgets the retirement of the
// paths it deleted.
func (c *Catalog) EndPrune(id string, deleted []string) {
	if c.State == nil {
		return
	}
	if c.State.Pruning != nil && c.State.Pruning.ID == id {
		c.State.Pruning = nil
	}
	for _, p := range deleted {
		delete(c.State.Retired, p)
	}
	c.tidyState()
}

// Object is a stored file as a prune sees it. Its ModTime does not decide
// anything: a file's age says nothing about when it left the catalog.
type Object struct {
	Path    string
	ModTime time.Time
}

// Deletable returns the image files a prune may delete at now: files under
// images/ that no version references, that no live pending publish is
// uploading, and whose retirement (the moment the last catalog reference to
// them went) is at least grace ago.
//
// A stored file that nothing references and that has no retirement record
// is retired at now and waits the full grace: the catalog may have been
// rewritten by another tool (incus-simplestreams drops registry_state), so
// the file may have left it seconds ago, and its own age says nothing about
// that. An upload interrupted long ago therefore also waits one grace
// period after the first prune that sees it. Deletable also forgets
// retirement records of files that no longer exist.
//
// In a sharded registry c is the root and others are the product files:
// what they reference, protect or retired counts too, and c records the
// files found unaccounted for.
func (c *Catalog) Deletable(objects []Object, now time.Time, grace time.Duration, others ...*Catalog) []string {
	view := c.Layout().Whole(c, others) // what every file references, protects and retired
	refs, protected := view.Referenced(), view.pendingPaths(now)
	var retired map[string]time.Time // the latest retirement of each path in any file
	if view.State != nil {
		retired = maps.Clone(view.State.Retired)
	}
	c.state()
	for p := range c.State.Retired {
		if refs[p] { // referenced again (from another file of a sharded registry)
			delete(c.State.Retired, p)
		}
	}
	exists := map[string]bool{}
	var out []string
	for _, o := range objects {
		exists[o.Path] = true
		if !isImageFile(o.Path) || refs[o.Path] || protected[o.Path] {
			continue
		}
		since, ok := retired[o.Path]
		if !ok {
			c.retire(o.Path, now)
			since = now.UTC().Truncate(time.Second)
		}
		if !since.Add(grace).After(now) {
			out = append(out, o.Path)
		}
	}
	for p := range c.State.Retired {
		if !exists[p] {
			delete(c.State.Retired, p)
		}
	}
	c.tidyState()
	slices.Sort(out)
	return out
}

// InUse returns the paths the file references or a live pending publish
// of it protects.
func (c *Catalog) InUse(now time.Time) map[string]bool {
	out := c.Referenced()
	maps.Copy(out, c.pendingPaths(now))
	return out
}

// pendingPaths returns the paths live pending publishes protect.
func (c *Catalog) pendingPaths(now time.Time) map[string]bool {
	out := map[string]bool{}
	for _, p := range c.LivePending(now) {
		for _, path := range p.Paths {
			out[path] = true
		}
	}
	return out
}

// HasRetired reports whether the file records the retirement of any of
// paths.
func (c *Catalog) HasRetired(paths []string) bool {
	if c.State == nil {
		return false
	}
	return slices.ContainsFunc(paths, func(p string) bool { _, ok := c.State.Retired[p]; return ok })
}
