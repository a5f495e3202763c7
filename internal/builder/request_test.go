package builder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/delta/deltatest"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/image/imagetest"
	"github.com/incus-appliance/registry/internal/miniotest"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/dirstore/dirstoretest"
	"github.com/incus-appliance/registry/internal/store/memstore"
	"github.com/incus-appliance/registry/internal/store/s3store"
)

// rootSize is the built root of these tests: three upload parts.
const rootSize = 2*registry.UploadPartSize + 5<<20

var built = time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)

func TestBuildRecordsDigestsBesideTheOutputs(t *testing.T) {
	a := web(t, validYAML)
	bin, _ := fakeDistrobuilder(t)
	res, err := Container(context.Background(), a, webAmd64(t.TempDir()), Options{Compression: "gzip-1", Distrobuilder: bin})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := image.ReadRecord(res.Dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := image.Inspect(context.Background(), res.Metadata, res.Rootfs, image.Options{PartSize: registry.UploadPartSize})
	if err != nil {
		t.Fatal(err)
	}
	want, err := image.NewRecord(im, registry.UploadPartSize)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Check == "" {
		t.Error("record without its check")
	}
	rec.Check = ""
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("record\n%+v\nwant\n%+v", rec, want)
	}
}

// builtAppliance lays out appliance web as Container leaves it: the
// amd64 outputs (a rootSize root) with their digest record, written by
// the function Container uses.
func builtAppliance(t *testing.T) (*appliance.Appliance, Target) {
	return builtApplianceOf(t, rootSize)
}

func builtApplianceOf(t *testing.T, size int) (*appliance.Appliance, Target) {
	t.Helper()
	a := web(t, validYAML)
	target := webAmd64(t.TempDir())
	dir := target.Dir()
	os.MkdirAll(dir, 0o755)
	imagetest.WriteMetadata(t, dir, imagetest.DefaultSpec("web", built))
	imagetest.WriteSquashfs(t, dir, size, 7)
	if err := RecordDigests(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	return a, target
}

// stores returns the three backends, the S3 one on a MinIO started for
// the test, with multipart uploads for the root.
func stores(t *testing.T) map[string]func(t *testing.T) store.Store {
	return map[string]func(t *testing.T) store.Store{
		"memstore": func(*testing.T) store.Store { return memstore.New() },
		"dirstore": func(t *testing.T) store.Store { return dirstoretest.Open(t, t.TempDir()) },
		"s3": func(t *testing.T) store.Store {
			srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"registry"}})
			srv.SetEnv(t)
			st, err := s3store.New(t.Context(), s3store.Options{Bucket: "registry", EndpointURL: srv.Endpoint, MultipartThreshold: registry.UploadPartSize})
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
	}
}

// bytesRead is how many bytes this process has read so far (read(2) and
// friends, on files and sockets alike), from /proc/self/io.
func bytesRead(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatalf("counting bytes read: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no rchar in /proc/self/io")
	return 0
}

// Publishing a built appliance with its record reads each byte once: no
// hashing pass before the upload. Counted over the whole publish
// (describing the build and uploading it) by the kernel.
func TestPublishBuiltReadsEachByteOnce(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			a, target := builtAppliance(t)
			reg := &registry.Registry{Store: newStore(t)}

			before := bytesRead(t)
			reqs, _, err := Requests(ctx, a, []Target{target}, FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			res, err := reg.Publish(ctx, reqs[0])
			if err != nil {
				t.Fatal(err)
			}
			read := bytesRead(t) - before
			if read < rootSize || read > rootSize+rootSize/8 {
				t.Errorf("publishing a %d-byte root read %d bytes (%.2f×), want each byte read once", rootSize, read, float64(read)/rootSize)
			}
			if res.Reinspected != "" || !res.Files[1].Uploaded {
				t.Errorf("result %+v", res)
			}
			rep, err := reg.Verify(ctx)
			if err != nil || !rep.OK() {
				t.Fatalf("verify: %v %+v", err, rep)
			}
		})
	}
}

// A root changed behind its record (same size, mtime restored) is refused
// during its upload, before anything becomes visible and before the
// catalog changes; the publish then inspects the files and publishes what
// they hold.
func TestPublishBuiltWithStaleRecordFallsBack(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			a, target := builtAppliance(t)
			st := newStore(t)
			reg := &registry.Registry{Store: st}
			publishOther(t, reg)
			catalogBefore := readObject(t, st, catalog.ImagesPath)

			root := target.Rootfs()
			imagetest.Rewrite(t, root, func(b []byte) { b[rootSize/2] ^= 0xff })
			reqs, _, err := Requests(ctx, a, []Target{target}, FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			req := reqs[0]
			if req.OpenRoot == nil {
				t.Fatal("the record was not used (mtime and size are unchanged)")
			}
			stale := req.Image.Fingerprint
			staleMeta, staleRoot := catalog.ImagePaths(stale, req.Image.RootKind)
			reinspect, calls := req.Reinspect, 0
			req.Reinspect = func(ctx context.Context) (registry.PublishRequest, error) {
				calls++
				for _, key := range []string{staleRoot, staleMeta} {
					if _, err := st.Stat(ctx, key); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("%s is visible (or Stat failed: %v) after the refusal", key, err)
					}
				}
				if now := readObject(t, st, catalog.ImagesPath); !bytes.Equal(now, catalogBefore) {
					t.Errorf("images.json changed before the refusal:\n%s\nwas\n%s", now, catalogBefore)
				}
				return reinspect(ctx)
			}
			res, err := reg.Publish(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if calls != 1 || !strings.Contains(res.Reinspected, root) || !strings.Contains(res.Reinspected, "changed") {
				t.Errorf("fallback ran %d times, reason %q; want once, naming %s", calls, res.Reinspected, root)
			}
			im, err := image.Inspect(ctx, target.Metadata(), root, image.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Fingerprint != im.Fingerprint || res.Fingerprint == stale {
				t.Errorf("published %s, want the files' %s (stale record: %s)", res.Fingerprint, im.Fingerprint, stale)
			}
			if _, err := st.Stat(ctx, staleRoot); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("stale root %s stored: %v", staleRoot, err)
			}
			rep, err := reg.Verify(ctx)
			if err != nil || !rep.OK() {
				t.Fatalf("verify: %v %+v", err, rep)
			}
		})
	}
}

// publishOther makes the registry exist, with another product.
func publishOther(t *testing.T, reg *registry.Registry) {
	t.Helper()
	dir := t.TempDir()
	meta := imagetest.WriteMetadata(t, dir, imagetest.DefaultSpec("other", built))
	root := imagetest.WriteSquashfs(t, dir, 4096, 1)
	im, err := image.Inspect(t.Context(), meta, root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	req := registry.PublishRequest{Image: im.CatalogImage("other", nil, nil), MetadataPath: meta, RootPath: root}
	if _, err := reg.Publish(t.Context(), req); err != nil {
		t.Fatal(err)
	}
}

func readObject(t *testing.T, st store.Store, key string) []byte {
	t.Helper()
	rc, _, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A new version of the product gets a delta, made from the root before the
// upload: a root changed behind its record is caught there (the delta does
// not reproduce the recorded digest), with the catalog untouched, and the
// files' image is published, delta included, after the fallback.
func TestPublishBuiltNewVersionWithStaleRecordFallsBack(t *testing.T) {
	deltatest.Require(t)
	ctx := t.Context()
	a, target := builtApplianceOf(t, 1<<20)
	st := memstore.New()
	reg := &registry.Registry{Store: st}
	reqs, _, err := Requests(ctx, a, []Target{target}, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Publish(ctx, reqs[0]); err != nil {
		t.Fatal(err)
	}

	// The next build, recorded; then the root changes behind the record.
	dir, meta, root := target.Dir(), target.Metadata(), target.Rootfs()
	imagetest.WriteMetadata(t, dir, imagetest.DefaultSpec("web", built.Add(time.Hour)))
	imagetest.Rewrite(t, root, func(b []byte) { b[100] ^= 0xff })
	if err := RecordDigests(ctx, dir); err != nil {
		t.Fatal(err)
	}
	imagetest.Rewrite(t, root, func(b []byte) { b[200] ^= 0xff })
	catalogBefore := readObject(t, st, catalog.ImagesPath)

	reqs, _, err = Requests(ctx, a, []Target{target}, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req := reqs[0]
	req.DeltaDepth = registry.DefaultDeltaDepth
	reinspect, calls := req.Reinspect, 0
	req.Reinspect = func(ctx context.Context) (registry.PublishRequest, error) {
		calls++
		if now := readObject(t, st, catalog.ImagesPath); !bytes.Equal(now, catalogBefore) {
			t.Error("images.json changed before the refusal")
		}
		return reinspect(ctx)
	}
	res, err := reg.Publish(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	im, err := image.Inspect(ctx, meta, root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || !strings.Contains(res.Reinspected, root) || res.Fingerprint != im.Fingerprint || len(res.Deltas) != 1 || !res.Deltas[0].Listed {
		t.Errorf("fallback ran %d times (%q); published %s (want %s) with deltas %+v", calls, res.Reinspected, res.Fingerprint, im.Fingerprint, res.Deltas)
	}
	rep, err := reg.Verify(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}
