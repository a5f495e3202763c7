package simplestreams_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/simplestreams"
	"github.com/incus-appliance/registry/internal/simplestreams/sstest"
)

// The three shapes of tree, from a folder and over HTTPS (under a path
// prefix): every product with its versions, and every file an item names
// read through the same source with the item's size and SHA-256.
func TestReadCatalogOfEachTree(t *testing.T) {
	for _, c := range []struct {
		tree     string
		versions map[string]int // product → versions
	}{
		{"publish", map[string]int{"hello:amd64": 2, "web:amd64": 1}},
		{"publish-sharded", map[string]int{"hello:amd64": 2, "web:amd64": 1}},
		{"incus-simplestreams", map[string]int{"alpine:1.0:default:amd64": 1}},
	} {
		dir := "testdata/" + c.tree
		for name, src := range map[string]simplestreams.Source{
			"folder":         simplestreams.Stalling(dirSource(dir), 0),
			"https":          sstest.HTTPSSource(t, "/mirror/sub", http.FileServer(http.Dir(dir))),
			"https, no size": sstest.HTTPSSource(t, "", noLength(http.FileServer(http.Dir(dir)))),
		} {
			t.Run(c.tree+"/"+name, func(t *testing.T) {
				cat, err := simplestreams.ReadCatalog(t.Context(), src)
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]int{}
				for pk, p := range cat.Products {
					got[pk] = len(p.Versions)
				}
				if !reflect.DeepEqual(got, c.versions) {
					t.Errorf("products and version counts %v, want %v", got, c.versions)
				}
				wantItemFiles(t, src, cat)
			})
		}
	}
}

// noLength serves h's responses without Content-Length (chunked), as a
// server that streams does.
func noLength(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(chunked{w}, r)
	})
}

type chunked struct{ http.ResponseWriter }

func (c chunked) WriteHeader(code int) {
	c.Header().Del("Content-Length")
	c.ResponseWriter.WriteHeader(code)
}

func (c chunked) Write(b []byte) (int, error) {
	c.Header().Del("Content-Length")
	return c.ResponseWriter.Write(b)
}

// A sharded tree is the one-file tree's products, split over files.
func TestShardedTreeHoldsTheSameProducts(t *testing.T) {
	one, err := simplestreams.ReadCatalog(t.Context(), dirSource("testdata/publish"))
	if err != nil {
		t.Fatal(err)
	}
	sharded, err := simplestreams.ReadCatalog(t.Context(), dirSource("testdata/publish-sharded"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(one.Products, sharded.Products) {
		t.Errorf("the sharded tree's products differ from the one-file tree's:\n%s\n%s", one.Marshal(), sharded.Marshal())
	}
}

// A tree shaped like images.linuxcontainers.org's (version keys and paths
// with ':', five kinds of item, deltas, an lxd_combined item), served by
// sstest over HTTPS: read as it was built, every file as listed.
func TestReadCatalogOfALinuxContainersShapedServer(t *testing.T) {
	tree := sstest.Build(sstest.Spec{Products: 24, Versions: 3, FileSize: 200})
	src := simplestreams.Stalling(sstest.HTTPSSource(t, "", tree), 0)
	cat, err := simplestreams.ReadCatalog(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cat.Marshal(), tree.Catalog.Marshal(); !bytes.Equal(got, want) {
		t.Errorf("read %d products, built %d: the catalogs differ", len(cat.Products), len(tree.Catalog.Products))
	}
	wantItemFiles(t, src, cat)
}

// wantItemFiles reads every file an item of cat names through src and
// checks its size and SHA-256.
func wantItemFiles(t *testing.T, src simplestreams.Source, cat *catalog.Catalog) {
	t.Helper()
	files := 0
	for pk, p := range cat.Products {
		for vk, v := range p.Versions {
			for name, it := range v.Items {
				rc, err := src.Open(t.Context(), it.Path)
				if err != nil {
					t.Fatalf("%s %s %s: %v", pk, vk, name, err)
				}
				got, n, err := digest.OfReader(rc)
				rc.Close()
				if err != nil || n != it.Size || got != it.SHA256 {
					t.Errorf("%s %s %s: %s read %d bytes (%v), want %d with sha256 %s", pk, vk, name, it.Path, n, err, it.Size, it.SHA256)
				}
				files++
			}
		}
	}
	if files == 0 {
		t.Error("no item files read")
	}
}

// Bad trees: a clear error naming the source and the file, never a
// partial catalog; index entries that are not image product files are
// passed over.
func TestReadCatalogBadInput(t *testing.T) {
	products, err := os.ReadFile("testdata/publish/streams/v1/images.json")
	if err != nil {
		t.Fatal(err)
	}
	index := func(entries ...string) []byte {
		return []byte(`{"format":"index:1.0","index":{` + strings.Join(entries, ",") + `}}`)
	}
	entry := func(name, path, format string) string {
		return `"` + name + `":{"datatype":"image-downloads","path":"` + path + `","format":"` + format + `","products":["hello:amd64"]}`
	}
	good := entry("images", "streams/v1/images.json", "products:1.0")
	for _, c := range []struct {
		name  string
		files memSource
		want  string
		is    error
	}{
		{"no index.json", memSource{}, "streams/v1/index.json", simplestreams.ErrNotFound},
		{"index.json not JSON", memSource{catalog.IndexPath: []byte("{")}, "source mem:", nil},
		{"index.json a list", memSource{catalog.IndexPath: []byte("[]")}, "source mem:", nil},
		{"an entry of another format", memSource{catalog.IndexPath: index(entry("images", "streams/v1/images.json", "products:2.0"))},
			`entry "images" has format "products:2.0"`, nil},
		{"an entry path going up", memSource{catalog.IndexPath: index(entry("images", "../images.json", "products:1.0"))},
			`entry "images": path:`, nil},
		{"an absolute entry path", memSource{catalog.IndexPath: index(entry("images", "/streams/v1/images.json", "products:1.0"))},
			`entry "images": path:`, nil},
		{"a product file missing", memSource{catalog.IndexPath: index(good)}, "streams/v1/images.json", simplestreams.ErrNotFound},
		{"a product file not JSON", memSource{catalog.IndexPath: index(good), catalog.ImagesPath: []byte(`{"products":`)},
			"streams/v1/images.json: ", nil},
		{"a second product file not JSON", memSource{catalog.IndexPath: index(entry("images-2", "streams/v1/images-2.json", "products:1.0")),
			"streams/v1/images-2.json": []byte(`{"products":`)}, "streams/v1/images-2.json: invalid JSON", nil},
		{"a product file of the wrong type", memSource{catalog.IndexPath: index(good), catalog.ImagesPath: []byte(`{"products":[]}`)},
			"streams/v1/images.json: ", nil},
		{"an item path going up", memSource{catalog.IndexPath: index(good),
			catalog.ImagesPath: bytes.Replace(products, []byte(`"path": "images/`), []byte(`"path": "../images/`), 1)},
			"streams/v1/images.json: ", nil},
		{"a product in two files", memSource{
			catalog.IndexPath:      index(good, entry("more", "streams/v1/more.json", "products:1.0")),
			catalog.ImagesPath:     products,
			"streams/v1/more.json": products,
		}, "amd64 is in two product files", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cat, err := simplestreams.ReadCatalog(t.Context(), c.files)
			if err == nil || cat != nil {
				t.Fatalf("ReadCatalog = %v products, error %v; want an error and no catalog", catalogSize(cat), err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, "source mem: ") || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line starting with the source and saying %q", msg, c.want)
			}
			if file := c.want[:strings.Index(c.want+":", ":")]; strings.HasPrefix(file, "streams/") && strings.Count(msg, file) != 1 {
				t.Errorf("error %q names %s %d times, want once", msg, file, strings.Count(msg, file))
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q is not %v", msg, c.is)
			}
		})
	}

	// Entries that are not image product files are not read.
	other := `"other":{"datatype":"content-download","path":"streams/v1/other.json","format":"products:1.0","products":["x"]}`
	empty := `"empty":{"datatype":"image-downloads","path":"streams/v1/empty.json","format":"products:1.0","products":[]}`
	cat, err := simplestreams.ReadCatalog(t.Context(), memSource{catalog.IndexPath: index(other, empty, good), catalog.ImagesPath: products})
	if err != nil || !slices.Equal(cat.ProductKeys(), []string{"hello:amd64", "web:amd64"}) {
		t.Errorf("ReadCatalog past other entries: %v products, error %v; want hello and web", catalogSize(cat), err)
	}
}

func catalogSize(c *catalog.Catalog) int {
	if c == nil {
		return 0
	}
	return len(c.Products)
}

// sizedSource gives every file the length it announces, true or not.
type sizedSource struct {
	data      []byte
	announced int64
}

func (s sizedSource) String() string { return "sized" }

func (s sizedSource) Open(context.Context, string) (io.ReadCloser, error) {
	return simplestreams.NewSized(io.NopCloser(bytes.NewReader(s.data)), s.announced), nil
}

// ReadJSON reads exactly the length a source announces: a shorter body is
// truncated, a longer one is refused; an unknown length reads to the end.
func TestReadJSONLength(t *testing.T) {
	data := []byte(`{"format":"index:1.0","index":{}}`)
	n := int64(len(data))
	for _, c := range []struct {
		name      string
		announced int64
		want      string // error; "" reads data
	}{
		{"exact", n, ""},
		{"unknown", -1, ""},
		{"shorter than announced", n + 10, "truncated: 33 of 43 bytes"},
		{"longer than announced", n - 3, "longer than the 30 bytes announced"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := simplestreams.ReadJSON(t.Context(), sizedSource{data, c.announced}, catalog.IndexPath)
			switch {
			case c.want == "" && (err != nil || !bytes.Equal(got, data)):
				t.Errorf("ReadJSON = %q, %v; want the file", got, err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), catalog.IndexPath)):
				t.Errorf("ReadJSON error %v; want one naming %s and saying %q", err, catalog.IndexPath, c.want)
			}
		})
	}
}
