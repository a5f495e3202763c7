package gitrepo

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/tooltest"
)

// newRepo makes a git repository with one commit: app/appliance.yaml and a
// .gitignore ignoring /keys/.
func newRepo(t *testing.T) string {
	t.Helper()
	tooltest.Require(t, "git")
	dir := t.TempDir()
	write(t, filepath.Join(dir, "app", "appliance.yaml"), "name: app\n")
	write(t, filepath.Join(dir, ".gitignore"), "/keys/\n")
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"remote", "add", "origin", "https://ci-bot:s3cret-token@git.example.org/org/appliances.git"},
		{"add", "."},
		{"-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "first"},
	} {
		tooltest.Run(t, "git", append([]string{"-C", dir}, args...)...)
	}
	return dir
}

func write(t *testing.T, path, content string) {
	t.Helper()
	filetest.Write(t, path, []byte(content))
}

func TestDescribe(t *testing.T) {
	ctx := context.Background()
	repo := newRepo(t)
	head, err := git(ctx, repo, "rev-parse", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(repo, "app")
	src, ok, err := Describe(ctx, app)
	want := Source{URL: "https://git.example.org/org/appliances.git", Commit: head, Path: "app"}
	if err != nil || !ok || src != want {
		t.Fatalf("Describe = %+v, %v, %v; want %+v", src, ok, err, want)
	}

	// An untracked file elsewhere leaves the folder clean; one inside it,
	// or an edit, makes it dirty. Ignored files do not count.
	write(t, filepath.Join(repo, "other.txt"), "x")
	write(t, filepath.Join(repo, "keys", "k.asc"), "x")
	if src, _, _ := Describe(ctx, app); src.Dirty {
		t.Errorf("Describe(app) dirty after a change outside it")
	}
	write(t, filepath.Join(app, "new.yaml"), "x")
	if src, _, _ := Describe(ctx, app); !src.Dirty {
		t.Errorf("Describe(app) clean with an untracked file in it")
	}
	if src, _, _ := Describe(ctx, repo); !src.Dirty || src.Path != "." {
		t.Errorf("Describe(top) = %+v, want dirty, path .", src)
	}

	if _, ok, err := Describe(ctx, t.TempDir()); ok || err != nil {
		t.Errorf("Describe(outside any repository) = %v, %v; want false, nil", ok, err)
	}
}

func TestCheckIgnored(t *testing.T) {
	ctx := context.Background()
	repo := newRepo(t)
	for path, want := range map[string]struct{ in, ignored bool }{
		filepath.Join(repo, "keys", "signing-key.asc"):             {true, true}, // folder not there yet
		filepath.Join(repo, "signing-key.asc"):                     {true, false},
		filepath.Join(repo, "app", "deep", "new", "key.asc"):       {true, false},
		filepath.Join(repo, "app", "appliance.yaml"):               {true, false}, // tracked
		filepath.Join(t.TempDir(), "elsewhere", "signing-key.asc"): {false, false},
	} {
		top, in, ignored, err := CheckIgnored(ctx, path)
		if err != nil || in != want.in || ignored != want.ignored {
			t.Errorf("CheckIgnored(%s) = %v, %v, %v; want %v, %v", path, in, ignored, err, want.in, want.ignored)
		}
		if in && top != resolved(t, repo) {
			t.Errorf("CheckIgnored(%s) top = %s, want %s", path, top, repo)
		}
	}
	// A relative path is taken from the working directory.
	t.Chdir(filepath.Join(repo, "app"))
	if _, in, ignored, err := CheckIgnored(ctx, "../keys/k.asc"); err != nil || !in || !ignored {
		t.Errorf("CheckIgnored(../keys/k.asc) = %v, %v, %v; want in, ignored", in, ignored, err)
	}
}

func resolved(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestWithoutCredentials(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:token@github.com/org/repo.git": "https://github.com/org/repo.git",
		"https://github.com/org/repo":                "https://github.com/org/repo",
		"git@github.com:org/repo.git":                "git@github.com:org/repo.git",
		"ssh://git@host:22/org/repo":                 "ssh://host:22/org/repo",
		"/srv/git/repo.git":                          "/srv/git/repo.git",
	} {
		if got := withoutCredentials(in); got != want {
			t.Errorf("withoutCredentials(%q) = %q, want %q", in, got, want)
		}
	}
}
