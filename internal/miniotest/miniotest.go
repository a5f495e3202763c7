// Package miniotest starts real MinIO servers for tests: the pinned binary
// that scripts/minio.sh builds, on 127.0.0.1 with a temp data directory and
// random credentials, optionally with TLS. A missing binary skips the test,
// or fails it when REGISTRY_E2E=require (tooltest).
package miniotest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/incus-appliance/registry/internal/tlsutil"
	"github.com/incus-appliance/registry/internal/tooltest"
)

// Region is the region the servers report.
const Region = "us-east-1"

// Binary returns the MinIO binary: $MINIO_BIN, else the one
// scripts/minio.sh caches, else "minio" on PATH.
func Binary() (string, error) {
	if p := os.Getenv("MINIO_BIN"); p != "" {
		return p, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	if m, _ := filepath.Glob(filepath.Join(cache, "appliance-registry", "minio-*", "minio")); len(m) > 0 {
		return m[len(m)-1], nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("MinIO not found: run scripts/minio.sh install (or set MINIO_BIN)")
}

// Options tune a server.
type Options struct {
	// TLS serves HTTPS with a fresh self-signed CA certificate (CertFile).
	TLS bool
	// Buckets to create.
	Buckets []string
	// Env is extra server environment ("KEY=value"), e.g.
	// MINIO_KMS_SECRET_KEY to enable SSE-S3 (see KMSSecretKeyEnv).
	Env []string
}

// Server is a running MinIO.
type Server struct {
	Endpoint             string // http(s)://127.0.0.1:PORT
	AccessKey, SecretKey string
	// CertFile is the PEM certificate to trust (TLS only).
	CertFile string
	Dir      string

	bin, addr string
	tls       bool
	env       []string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// Start starts a server for the test and stops it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		tooltest.Missing(t, err)
	}
	s, err := StartBinary(bin, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// StartBinary starts MinIO from bin with its state under dir (for use
// outside a test, e.g. in TestMain or a benchmark).
func StartBinary(bin, dir string, opts Options) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{bin: bin, addr: addr, Dir: dir, tls: opts.TLS, env: opts.Env,
		AccessKey: "minio-" + randHex(6), SecretKey: randHex(18)}
	if opts.TLS {
		certPEM, keyPEM, err := tlsutil.SelfSigned([]string{"127.0.0.1", "localhost"}, 48*time.Hour)
		if err != nil {
			return nil, err
		}
		certs := filepath.Join(dir, "certs")
		if err := os.MkdirAll(certs, 0o700); err != nil {
			return nil, err
		}
		s.CertFile = filepath.Join(certs, "public.crt")
		if err := os.WriteFile(s.CertFile, certPEM, 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(certs, "private.key"), keyPEM, 0o600); err != nil {
			return nil, err
		}
		s.Endpoint = "https://" + addr
	} else {
		s.Endpoint = "http://" + addr
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	for _, b := range opts.Buckets {
		if err := s.CreateBucket(context.Background(), b); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) start() error {
	args := []string{"server", filepath.Join(s.Dir, "data"), "--address", s.addr, "--console-address", "127.0.0.1:0", "--quiet"}
	if s.tls {
		args = append(args, "--certs-dir", filepath.Join(s.Dir, "certs"))
	}
	log, err := os.OpenFile(filepath.Join(s.Dir, "minio.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	cmd.Env = append(cmd.Env, s.env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start minio: %w", err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.exited) }()
	return s.waitReady()
}

// ReadyTimeout bounds how long Start waits for a new server: generous, as
// a busy 2-core machine running the race detector can take a while.
const ReadyTimeout = 3 * time.Minute

// waitReady waits until the server is really ready: its ready endpoint
// answers 200 and a first S3 call (ListBuckets) succeeds; MinIO answers
// "Server not initialized yet" (503) for a while after its endpoints come
// up. It polls until ReadyTimeout, not for a fixed time.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(ReadyTimeout)
	for {
		err := s.probe()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("minio not ready after %s (%v); see %s", ReadyTimeout, err, filepath.Join(s.Dir, "minio.log"))
		}
		select {
		case <-s.exited:
			return fmt.Errorf("minio exited at start; see %s", filepath.Join(s.Dir, "minio.log"))
		case <-time.After(200 * time.Millisecond): // poll interval
		}
	}
}

func (s *Server) probe() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/minio/health/ready", nil)
	if err != nil {
		return err
	}
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ready endpoint: %s", resp.Status)
	}
	_, err = s.Client().ListBuckets(ctx, &s3.ListBucketsInput{})
	return err
}

// Stop stops the server (its data stays in Dir).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	s.cmd = nil
}

// Restart starts the server again on the same address with the same data.
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

// Env returns the environment a publisher needs to reach the server.
func (s *Server) Env() []string {
	env := []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + Region, "AWS_ENDPOINT_URL=" + s.Endpoint}
	if s.CertFile != "" {
		env = append(env, "AWS_CA_BUNDLE="+s.CertFile)
	}
	return env
}

// SetEnv sets Env's variables for the rest of the test (t.Setenv), so that
// an S3 client the test makes from the environment reaches the server.
func (s *Server) SetEnv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// HTTPClient trusts the server's certificate (when TLS).
func (s *Server) HTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.CertFile != "" {
		tr.TLSClientConfig = tlsutil.ClientConfig(s.CertFile)
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Client returns an S3 client for admin work in tests.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:   s.HTTPClient(),
	})
}

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return nil
}

// AllowAnonymousRead lets anyone GET objects under prefix of bucket (what a
// public registry bucket needs), without allowing listing.
func (s *Server) AllowAnonymousRead(ctx context.Context, bucket, prefix string) error {
	resource := "arn:aws:s3:::" + bucket + "/" + strings.TrimPrefix(prefix+"*", "/")
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["` + resource + `"]}]}`
	_, err := s.Client().PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(policy)})
	if err != nil {
		return fmt.Errorf("put bucket policy: %w", err)
	}
	return nil
}

// KMSSecretKeyEnv returns a MINIO_KMS_SECRET_KEY setting with a fresh
// random key: with it, MinIO supports SSE-S3 (bucket default encryption
// AES256).
func KMSSecretKeyEnv() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return "MINIO_KMS_SECRET_KEY=test-key:" + base64.StdEncoding.EncodeToString(key)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
