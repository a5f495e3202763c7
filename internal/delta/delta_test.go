package delta_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/incus-appliance/registry/internal/delta"
	"github.com/incus-appliance/registry/internal/delta/deltatest"
	"github.com/incus-appliance/registry/internal/digest"
)

// pair writes a base and a target that differs from it by a few bytes in
// the middle; it returns their paths and the target's digest.
func pair(t *testing.T) (base, target, targetSHA string) {
	dir := t.TempDir()
	b := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(b)
	tg := bytes.Clone(b)
	copy(tg[500_000:], "a changed file")
	base, target = filepath.Join(dir, "base"), filepath.Join(dir, "target")
	if err := os.WriteFile(base, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, tg, 0o644); err != nil {
		t.Fatal(err)
	}
	return base, target, digest.Of(tg)
}

func TestMakeReproducesTargetAndIsSmall(t *testing.T) {
	deltatest.Require(t)
	ctx := context.Background()
	base, target, want := pair(t)
	out := filepath.Join(t.TempDir(), "d.vcdiff")
	res, err := delta.Make(ctx, base, target, out, want)
	if err != nil {
		t.Fatal(err)
	}
	if res.Size <= 0 || res.Size > 4096 {
		t.Errorf("delta of a 14-byte change in 1 MiB is %d bytes, want (0, 4096]", res.Size)
	}
	var got bytes.Buffer
	sha, n, err := delta.Decode(ctx, base, out, &got)
	if err != nil || sha != want || n != 1<<20 {
		t.Fatalf("Decode = %s, %d, %v; want %s, %d", sha, n, err, want, 1<<20)
	}
	// Deterministic: a second encoding of the same pair gives the same bytes.
	res2, err := delta.Make(ctx, base, target, out+"2", want)
	if err != nil || res2.SHA256 != res.SHA256 {
		t.Errorf("second encoding: %s, %v; want the same digest %s", res2.SHA256, err, res.SHA256)
	}
}

func TestMakeRefusesAWrongTargetDigest(t *testing.T) {
	deltatest.Require(t)
	base, target, _ := pair(t)
	_, err := delta.Make(context.Background(), base, target, filepath.Join(t.TempDir(), "d"), "00"+string(bytes.Repeat([]byte("0"), 62)))
	if !errors.Is(err, delta.ErrMismatch) {
		t.Fatalf("err = %v, want ErrMismatch", err)
	}
}

func TestCheckFindsACorruptDelta(t *testing.T) {
	deltatest.Require(t)
	ctx := context.Background()
	base, target, want := pair(t)
	out := filepath.Join(t.TempDir(), "d.vcdiff")
	if _, err := delta.Make(ctx, base, target, out, want); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(out)
	data[len(data)-3] ^= 0xff
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := delta.Check(ctx, base, out, want); !errors.Is(err, delta.ErrMismatch) {
		t.Fatalf("Check of a corrupt delta = %v, want ErrMismatch", err)
	}
	// Decoding against the wrong base fails too.
	if err := delta.Check(ctx, target, out, want); !errors.Is(err, delta.ErrMismatch) {
		t.Fatalf("Check against the wrong base = %v, want ErrMismatch", err)
	}
}

func TestMissingXdelta3IsOneClearError(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	base, target, want := pair(t)
	_, err := delta.Make(context.Background(), base, target, filepath.Join(t.TempDir(), "d"), want)
	if !errors.Is(err, delta.ErrNoXdelta3) {
		t.Fatalf("err = %v, want ErrNoXdelta3", err)
	}
}
