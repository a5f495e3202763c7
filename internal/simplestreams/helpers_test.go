package simplestreams_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/incus-appliance/registry/internal/key"
	"github.com/incus-appliance/registry/internal/simplestreams"
)

// The trees under testdata were written by the real tools, image files
// included (tiny sample images):
//   - publish: `publish` of hello (two versions, so a delta) and web into a
//     folder: one images.json with registry_state;
//   - publish-sharded: the same publishes with --catalog-shards 3: a root
//     images.json without products, images-K.json product files, one of
//     them empty;
//   - incus-simplestreams: `incus-simplestreams add` of an alpine image:
//     files named by fingerprint, no registry_state.
// images.linuxcontainers.org's shape comes from sstest, served over HTTPS.

// dirSource reads a tree from a folder, with each file's length, as the
// mirror reads a directory registry.
type dirSource string

func (d dirSource) String() string { return string(d) }

func (d dirSource) Open(_ context.Context, path string) (io.ReadCloser, error) {
	if err := key.Check(path); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(string(d), path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, simplestreams.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return simplestreams.NewSized(f, fi.Size()), nil
}

// memSource is a tree in memory; its readers do not know their length.
type memSource map[string][]byte

func (m memSource) String() string { return "mem" }

func (m memSource) Open(_ context.Context, path string) (io.ReadCloser, error) {
	b, ok := m[path]
	if !ok {
		return nil, fmt.Errorf("%s: %w", path, simplestreams.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}
