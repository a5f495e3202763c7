package builder

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A cancelled build stops distrobuilder and everything it started
// (debootstrap, apt, mksquashfs...), not distrobuilder alone: a child
// that outlives it would go on writing into the build's work folder and
// hold the log pipe open.
func TestCancelledBuildStopsItsChildren(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	// A "distrobuilder" whose child ignores nothing and would run for
	// an hour; the parent waits for it.
	script := "sleep 3600 &\necho $! > " + pidFile + ".tmp\nmv " + pidFile + ".tmp " + pidFile + "\necho started\nwait\n"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	done := make(chan error, 1)
	go func() { done <- runLogged(cmd, io.Discard, nil) }()

	var child int
	for deadline := time.Now().Add(time.Minute); child == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the child never started")
		}
		if data, err := os.ReadFile(pidFile); err == nil {
			child, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), `stopped during step "starting": the build was cancelled`) {
			t.Errorf("a cancelled build: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the cancelled build did not return")
	}
	for deadline := time.Now().Add(time.Minute); alive(child); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("distrobuilder's child %d still runs after the build was cancelled", child)
		}
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(data), ") ")
	return !strings.HasPrefix(rest, "Z")
}
