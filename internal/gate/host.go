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
	// Pipe runs the incus CLI with args from, its stdout fed to the incus
	// CLI with args to, and returns to's stdout; the bytes between them
	// (a relation's credentials) are in no argument and no result.
	Pipe(ctx context.Context, from, to []string) (string, error)
}

// CLI is the real Host: `incus` on PATH (INCUS_BIN overrides it).
type CLI struct{}

func incusBin() string {
	if bin := os.Getenv("INCUS_BIN"); bin != "" {
		return bin
	}
	return "incus"
}

func (CLI) Incus(ctx context.Context, args ...string) (string, error) {
	bin := incusBin()
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

func (CLI) Pipe(ctx context.Context, from, to []string) (string, error) {
	src := exec.CommandContext(ctx, incusBin(), from...)
	dst := exec.CommandContext(ctx, incusBin(), to...)
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", err
	}
	var srcErr, out, dstErr bytes.Buffer
	src.Stdout, src.Stderr = pw, &srcErr
	dst.Stdin, dst.Stdout, dst.Stderr = pr, &out, &dstErr
	errStart := src.Start()
	if errStart == nil {
		if errStart = dst.Start(); errStart != nil {
			_ = src.Process.Kill()
			_ = src.Wait()
		}
	}
	// The children hold the pipe's ends now: the consumer sees the end of
	// its input when the provider exits.
	pw.Close()
	pr.Close()
	if errStart != nil {
		return "", errStart
	}
	errSrc, errDst := src.Wait(), dst.Wait()
	switch {
	case errSrc != nil:
		return "", fmt.Errorf("%s: %s", strings.Join(from, " "), orErr(srcErr.String(), errSrc))
	case errDst != nil:
		return out.String(), fmt.Errorf("%s: %s", strings.Join(to, " "), orErr(dstErr.String(), errDst))
	}
	return out.String(), nil
}

// orErr is a command's stderr, trimmed, or err when it wrote none.
func orErr(stderr string, err error) string {
	if s := strings.TrimSpace(stderr); s != "" {
		return s
	}
	return err.Error()
}
