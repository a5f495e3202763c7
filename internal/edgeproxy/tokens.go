package edgeproxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// minTokenLen is the shortest token accepted: a token is a password.
const minTokenLen = 16

// tokenSet is the access tokens of a private registry, read from a file
// (one "TOKEN [NAME]" per line, # comments) and read again when the file
// changes, checked at most once per reloadEvery. Tokens are compared in
// constant time and only their names ever leave this type.
type tokenSet struct {
	file        string
	reloadEvery time.Duration

	mu      sync.RWMutex
	tokens  []namedToken
	sig     string // size, modification time and inode of the file read
	checked time.Time
	lastErr error
}

type namedToken struct {
	sum  [32]byte // sha256 of the token: equal lengths for the comparison
	name string
}

// loadTokens reads the token file; a file that does not parse is an error.
func loadTokens(file string, reloadEvery time.Duration) (*tokenSet, error) {
	ts := &tokenSet{file: file, reloadEvery: reloadEvery}
	sig, err := fileSig(file)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	toks, err := readTokens(file)
	if err != nil {
		return nil, err
	}
	ts.tokens, ts.sig, ts.checked = toks, sig, time.Now()
	return ts, nil
}

func fileSig(file string) (string, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d %d %v", fi.Size(), fi.ModTime().UnixNano(), fi.Sys()), nil
}

// readTokens parses a token file.
func readTokens(file string) ([]namedToken, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	var out []namedToken
	seen := map[[32]byte]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		tok, name := f[0], fmt.Sprintf("line-%d", n)
		if len(f) > 1 {
			name = f[1]
		}
		if len(f) > 2 {
			return nil, fmt.Errorf("tokens: %s line %d: want TOKEN [NAME]", file, n)
		}
		if len(tok) < minTokenLen || !tokenChars(tok) {
			return nil, fmt.Errorf("tokens: %s line %d: a token is at least %d characters of A-Z a-z 0-9 - _", file, n, minTokenLen)
		}
		if !tokenChars(name) {
			return nil, fmt.Errorf("tokens: %s line %d: a name is made of A-Z a-z 0-9 - _", file, n)
		}
		sum := sha256.Sum256([]byte(tok))
		if seen[sum] {
			return nil, fmt.Errorf("tokens: %s line %d: the same token twice", file, n)
		}
		seen[sum] = true
		out = append(out, namedToken{sum: sum, name: name})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("tokens: %s holds no token", file)
	}
	return out, nil
}

func tokenChars(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s != ""
}

// refresh reads the file again when it changed since the last check (at
// most once per reloadEvery). A file that no longer parses, or is gone,
// leaves no token valid: revoking by breaking the file fails closed.
func (ts *tokenSet) refresh(now time.Time) {
	ts.mu.RLock()
	fresh := now.Sub(ts.checked) < ts.reloadEvery
	ts.mu.RUnlock()
	if fresh {
		return
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if now.Sub(ts.checked) < ts.reloadEvery {
		return
	}
	ts.checked = now
	sig, err := fileSig(ts.file)
	if err == nil && sig == ts.sig {
		return
	}
	toks, err := readTokens(ts.file)
	if err != nil {
		ts.tokens, ts.sig, ts.lastErr = nil, "", err
		return
	}
	ts.tokens, ts.sig, ts.lastErr = toks, sig, nil
}

// lookup returns the name of tok, comparing it with every token in
// constant time.
func (ts *tokenSet) lookup(tok string) (string, bool) {
	ts.refresh(time.Now())
	sum := sha256.Sum256([]byte(tok))
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	name, found := "", 0
	for _, t := range ts.tokens {
		eq := subtle.ConstantTimeCompare(sum[:], t.sum[:])
		if eq == 1 {
			name = t.name
		}
		found |= eq
	}
	return name, found == 1
}

// strip splits "/<token>/rest" into the token's name, the prefix
// "/<token>" and "/rest"; ok is false when the first segment is no valid
// token.
func (ts *tokenSet) strip(raw string) (name, prefix, rest string, ok bool) {
	seg, after, _ := strings.Cut(strings.TrimPrefix(raw, "/"), "/")
	if seg == "" {
		return "", "", "", false
	}
	name, ok = ts.lookup(seg)
	if !ok {
		return "", "", "", false
	}
	return name, "/" + seg, "/" + after, true
}

// err is why the last reload failed, if it did.
func (ts *tokenSet) err() error {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return ts.lastErr
}
