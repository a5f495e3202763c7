// Package gitrepo asks git about the folder a file lives in: whether it is
// in a work tree, whether git ignores a path, and which repository and
// commit a folder's content comes from. It runs the git command line
// (git must be on PATH) and changes nothing.
package gitrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Source is where a folder's content comes from in git.
type Source struct {
	// URL is the remote "origin" without any user name or password in it,
	// or "" when the repository has no origin.
	URL string
	// Commit is the HEAD commit, or "" in a repository without commits.
	Commit string
	// Dirty reports uncommitted changes in the folder (modified, staged or
	// untracked files, ignored ones aside): the content is not Commit's.
	Dirty bool
	// Path is the folder relative to the repository's top ("." for the top).
	Path string
}

// Describe returns the git source of the folder dir; ok is false when dir
// is not inside a git work tree.
func Describe(ctx context.Context, dir string) (src Source, ok bool, err error) {
	top, ok, err := workTree(ctx, dir)
	if err != nil || !ok {
		return Source{}, ok, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Source{}, false, err
	}
	if src.Path, err = relativePath(top, abs); err != nil {
		return Source{}, false, err
	}
	// No commit yet, no origin: empty fields, not errors.
	if out, err := git(ctx, dir, "rev-parse", "--verify", "--quiet", "HEAD"); err == nil {
		src.Commit = out
	}
	if out, err := git(ctx, dir, "remote", "get-url", "origin"); err == nil {
		src.URL = withoutCredentials(out)
	}
	status, err := git(ctx, dir, "status", "--porcelain", "--untracked-files=normal", "--", ".")
	if err != nil {
		return Source{}, false, err
	}
	src.Dirty = status != ""
	return src, true, nil
}

// CheckIgnored reports whether path (which need not exist yet) is inside a
// git work tree, the work tree's top, and whether git ignores the path
// there. A tracked file is never ignored.
func CheckIgnored(ctx context.Context, path string) (top string, inWorkTree, ignored bool, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", false, false, err
	}
	dir := existingAncestor(filepath.Dir(abs))
	top, inWorkTree, err = workTree(ctx, dir)
	if err != nil || !inWorkTree {
		return top, inWorkTree, false, err
	}
	rel, err := relativePath(top, abs)
	if err != nil {
		return "", false, false, err
	}
	cmd := exec.CommandContext(ctx, "git", "-C", top, "check-ignore", "--quiet", "--", rel)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return top, true, true, nil
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return top, true, false, nil
	default:
		return "", false, false, fmt.Errorf("git check-ignore %s: %v: %s", rel, err, strings.TrimSpace(stderr.String()))
	}
}

// workTree returns the top of the work tree dir is in; ok is false when it
// is in none. Without git on PATH, a .git above dir is an error (nothing
// can tell whether a path is ignored there), and no .git means no tree.
func workTree(ctx context.Context, dir string) (top string, ok bool, err error) {
	if _, err := exec.LookPath("git"); err != nil {
		if d, found := findDotGit(dir); found {
			return "", false, fmt.Errorf("%s is in a git repository (%s) but git is not installed", dir, d)
		}
		return "", false, nil
	}
	out, err := git(ctx, dir, "rev-parse", "--is-inside-work-tree", "--show-toplevel")
	if err != nil {
		if strings.Contains(err.Error(), "not a git repository") {
			return "", false, nil
		}
		return "", false, err // e.g. a repository git refuses (dubious ownership)
	}
	lines := strings.Split(out, "\n")
	if lines[0] != "true" || len(lines) < 2 {
		return "", false, nil // inside .git, or a bare repository
	}
	return lines[1], true, nil
}

// relativePath is abs relative to the work tree top, resolving symbolic
// links on both sides (git prints top with them resolved).
func relativePath(top, abs string) (string, error) {
	dir, base := filepath.Dir(abs), filepath.Base(abs)
	if resolved, err := filepath.EvalSymlinks(existingAncestor(dir)); err == nil {
		rest, _ := filepath.Rel(existingAncestor(dir), dir)
		dir = filepath.Join(resolved, rest)
	}
	rel, err := filepath.Rel(top, filepath.Join(dir, base))
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s is not under the work tree %s", abs, top)
	}
	return rel, nil
}

// existingAncestor is dir or the nearest of its parents that exists.
func existingAncestor(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

// findDotGit looks for a .git entry in dir and its parents.
func findDotGit(dir string) (string, bool) {
	for d := existingAncestor(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d, true
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

// withoutCredentials drops a user name and password from a URL
// (https://user:token@host/repo) so that they never land in a record.
func withoutCredentials(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil || u.Scheme == "" {
		return raw // scp-like (git@host:repo): the user is not a secret
	}
	u.User = nil
	return u.String()
}

// git runs git in dir and returns its output, trimmed.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
