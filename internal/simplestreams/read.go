package simplestreams

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/key"
)

// MaxJSON bounds a JSON file read into memory (images.linuxcontainers.org's
// images.json is about 20 MB).
const MaxJSON = 256 << 20

// Sized is a reader that knows its length (a file, an S3 object, an HTTP
// body with Content-Length); -1 when unknown.
type Sized interface {
	Size() int64
}

// ReadJSON reads a whole JSON file of the source, up to MaxJSON bytes.
func ReadJSON(ctx context.Context, src Source, path string) ([]byte, error) {
	rc, err := src.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var data []byte
	if sz, ok := rc.(Sized); ok && sz.Size() >= 0 && sz.Size() <= MaxJSON {
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
		data, err = io.ReadAll(io.LimitReader(rc, MaxJSON+1))
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxJSON {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, MaxJSON)
	}
	return data, nil
}

// ReadCatalog reads what a client reads: index.json, then every product
// file of datatype image-downloads it names, parsed as strictly as our own
// catalog (a path breaking the key rule, a wrong type, invalid JSON: an
// error naming the file). The products of all files are returned as one
// catalog; a product key found in two files is an error.
func ReadCatalog(ctx context.Context, src Source) (*catalog.Catalog, error) {
	data, err := ReadJSON(ctx, src, catalog.IndexPath)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src, err)
	}
	ix, err := catalog.ParseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src, err)
	}
	out := catalog.New()
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
		data, err := ReadJSON(ctx, src, e.Path)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", src, err)
		}
		c, err := catalog.ParseFile(e.Path, data)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", src, err)
		}
		for pk, p := range c.Products {
			if out.Products[pk] != nil {
				return nil, fmt.Errorf("source %s: product %s is in two product files", src, pk)
			}
			out.Products[pk] = p
		}
	}
	return out, nil
}
