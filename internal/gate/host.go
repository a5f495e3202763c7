package gate

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Host is what the gate needs from the machine: the incus CLI and HTTP
// requests to the launched instance. Tests replace it with a fake.
type Host interface {
	// Incus runs the incus CLI and returns its stdout; a failure's
	// error carries its stderr.
	Incus(ctx context.Context, args ...string) (string, error)
	// Get fetches a URL, returning status and body.
	Get(ctx context.Context, url string) (status int, body string, err error)
}

// CLI is the real Host: `incus` on PATH (INCUS_BIN overrides it).
type CLI struct{}

func (CLI) Incus(ctx context.Context, args ...string) (string, error) {
	bin := os.Getenv("INCUS_BIN")
	if bin == "" {
		bin = "incus"
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return out.String(), fmt.Errorf("%s", msg)
	}
	return out.String(), nil
}

func (CLI) Get(ctx context.Context, url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body), nil
}
