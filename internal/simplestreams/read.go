package simplestreams

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/key"
	"github.com/incus-appliance/registry/internal/signing"
)

// MaxJSON bounds a products file read into memory (images.linuxcontainers.org's
// images.json is about 20 MB).
const MaxJSON = 256 << 20

// MaxIndexJSON bounds index.json (the index of a registry of 64 catalog
// files the size of ten images.linuxcontainers.org, every product and
// alias listed, is about 2 MB).
const MaxIndexJSON = 32 << 20

// Sized is a reader that knows its length (a file, an S3 object, an HTTP
// body with Content-Length); -1 when unknown.
type Sized interface {
	Size() int64
}

// ReadJSON reads a whole JSON file of the source, up to MaxJSON bytes.
func ReadJSON(ctx context.Context, src Source, path string) ([]byte, error) {
	return readJSON(ctx, src, path, MaxJSON)
}

// readJSON reads a whole file of the source, up to limit bytes.
func readJSON(ctx context.Context, src Source, path string, limit int64) ([]byte, error) {
	rc, err := src.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var data []byte
	if sz, ok := rc.(Sized); ok && sz.Size() > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes (%d announced)", path, limit, sz.Size())
	} else if ok && sz.Size() >= 0 {
		// Exactly the size announced: no doubling buffer.
		data = make([]byte, sz.Size())
		var n int
		n, err = io.ReadFull(rc, data)
		if err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("truncated: %d of %d bytes", n, len(data))
		} else if err == nil {
			if extra, _ := rc.Read(make([]byte, 1)); extra > 0 {
				err = fmt.Errorf("longer than the %d bytes announced", len(data))
			}
		}
	} else {
		data, err = io.ReadAll(io.LimitReader(rc, limit+1))
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// Catalog is a source's catalog, checked whole by Open and then read one
// products file at a time (Read), so that a mirror's memory follows the
// largest products file, not the sum of them.
type Catalog struct {
	src   Source
	docs  documents
	files []checkedFile
	// kept is file 0, parsed: the last one Open checked.
	kept *catalog.Catalog
}

// checkedFile is a products file Open checked.
type checkedFile struct {
	name string // its index entry
	e    catalog.IndexEntry
	sum  [sha256.Size]byte // of the bytes checked
}

// Trust is how a source's catalog documents are trusted.
type Trust struct {
	// Keyring, when set, makes the read take the signed documents only
	// (signed.go): index.sjson and the .sjson products files it names,
	// each verified with the keyring; the unsigned .json files are never
	// read.
	Keyring *signing.Keyring
	// Now is when signatures and expiry are checked (zero: time.Now).
	Now time.Time
}

// documents reads a source's catalog documents: as they are (plain), or
// only through their verified signatures (signed).
type documents interface {
	// index reads the index.
	index(ctx context.Context) (*catalog.Index, error)
	// products reads the products file of index entry name, e: its JSON,
	// and the sha256 of the bytes read.
	products(ctx context.Context, name string, e catalog.IndexEntry) ([]byte, [sha256.Size]byte, error)
	// check checks f, the products file of entry name, e, as parsed.
	check(name string, e catalog.IndexEntry, f *catalog.Catalog) error
	// signedBy lists the keys that signed the documents read (none when
	// plain).
	signedBy() []signing.Fingerprint
}

// plain reads the documents as they are.
type plain struct{ src Source }

func (d plain) index(ctx context.Context) (*catalog.Index, error) {
	data, err := readJSON(ctx, d.src, catalog.IndexPath, MaxIndexJSON)
	if err != nil {
		return nil, err
	}
	return catalog.ParseIndex(data)
}

func (d plain) products(ctx context.Context, _ string, e catalog.IndexEntry) ([]byte, [sha256.Size]byte, error) {
	data, err := ReadJSON(ctx, d.src, e.Path)
	if err != nil {
		return nil, [sha256.Size]byte{}, err
	}
	return data, sha256.Sum256(data), nil
}

func (plain) check(string, catalog.IndexEntry, *catalog.Catalog) error { return nil }

func (plain) signedBy() []signing.Fingerprint { return nil }

// Open reads what a client reads: the index, then every products file of
// datatype image-downloads it names, each parsed as strictly as our own
// catalog (a path breaking the key rule, a wrong type, invalid JSON: an
// error naming the file) and then dropped but for the last one. A product
// key found in two files is an error. A source Open accepts is whole: a
// mirror refuses a bad one before it copies anything.
func Open(ctx context.Context, src Source, trust Trust) (*Catalog, error) {
	c := &Catalog{src: src, docs: plain{src}}
	if trust.Keyring != nil {
		c.docs = newSigned(src, trust)
	}
	ix, err := c.docs.index(ctx)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src, err)
	}
	for _, name := range slices.Sorted(maps.Keys(ix.Index)) {
		e := ix.Index[name]
		if e.DataType != catalog.DataTypeImages || len(e.Products) == 0 {
			continue
		}
		if e.Format != catalog.FormatProducts {
			return nil, fmt.Errorf("source %s: %s: entry %q has format %q, want %q", src, catalog.IndexPath, name, e.Format, catalog.FormatProducts)
		}
		if err := key.Check(e.Path); err != nil {
			return nil, fmt.Errorf("source %s: %s: entry %q: path: %w", src, catalog.IndexPath, name, err)
		}
		c.files = append(c.files, checkedFile{name: name, e: e})
	}
	// Checked last to first, so that file 0, the first Read, is the one
	// kept.
	owner := map[string]int{} // product key → file
	for i := len(c.files) - 1; i >= 0; i-- {
		f, sum, err := c.read(ctx, c.files[i])
		if err != nil {
			return nil, err
		}
		c.files[i].sum = sum
		for pk := range f.Products {
			if j, ok := owner[pk]; ok {
				return nil, fmt.Errorf("source %s: product %s is in two product files (%s and %s)", src, pk, c.files[i].e.Path, c.files[j].e.Path)
			}
			owner[pk] = i
		}
		c.kept = f
	}
	return c, nil
}

// SignedBy lists the keys that signed the documents read (none when the
// source was read without a keyring).
func (c *Catalog) SignedBy() []signing.Fingerprint { return c.docs.signedBy() }

// Len is the number of products files.
func (c *Catalog) Len() int { return len(c.files) }

// Read returns products file i (0 to Len()-1): file 0 as Open kept it
// (Read it first: it is then forgotten), the others read and parsed again,
// an error if they changed since Open checked them.
func (c *Catalog) Read(ctx context.Context, i int) (*catalog.Catalog, error) {
	if i == 0 && c.kept != nil {
		f := c.kept
		c.kept = nil
		return f, nil
	}
	f, sum, err := c.read(ctx, c.files[i])
	if err != nil {
		return nil, err
	}
	if sum != c.files[i].sum {
		return nil, fmt.Errorf("source %s: %s changed while it was being mirrored: run the mirror again", c.src, c.files[i].e.Path)
	}
	return f, nil
}

// read reads, parses and checks products file cf.
func (c *Catalog) read(ctx context.Context, cf checkedFile) (*catalog.Catalog, [sha256.Size]byte, error) {
	data, sum, err := c.docs.products(ctx, cf.name, cf.e)
	if err != nil {
		return nil, sum, fmt.Errorf("source %s: %w", c.src, err)
	}
	f, err := catalog.ParseFile(cf.e.Path, data)
	if err == nil {
		err = c.docs.check(cf.name, cf.e, f)
	}
	if err != nil {
		return nil, sum, fmt.Errorf("source %s: %w", c.src, err)
	}
	return f, sum, nil
}

// ReadCatalog reads the whole catalog of a source as it is (Open, then
// every products file), its products in one catalog.
func ReadCatalog(ctx context.Context, src Source) (*catalog.Catalog, error) {
	c, err := Open(ctx, src, Trust{})
	if err != nil {
		return nil, err
	}
	out := catalog.New()
	for i := range c.Len() {
		f, err := c.Read(ctx, i)
		if err != nil {
			return nil, err
		}
		maps.Copy(out.Products, f.Products)
	}
	return out, nil
}
