package image

import (
	"archive/tar"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/ulikunitz/xz"
	"gopkg.in/yaml.v3"
)

// WriteMetadataTarball writes an Incus metadata tarball (what distrobuilder
// names incus.tar.xz) to w: an xz-compressed tar holding metadata.yaml and,
// if templates is not empty, templates/NAME for each entry, in name order.
// A nil metadataYAML leaves metadata.yaml out (useful in tests only).
//
// The output is deterministic: entries are owned by root and dated at the
// creation_date found in metadataYAML (the Unix epoch if there is none).
func WriteMetadataTarball(w io.Writer, metadataYAML []byte, templates map[string][]byte) error {
	var created struct {
		CreationDate int64 `yaml:"creation_date"`
	}
	_ = yaml.Unmarshal(metadataYAML, &created) // best effort: only dates the entries
	mtime := time.Unix(max(created.CreationDate, 0), 0)

	xw, err := xz.WriterConfig{DictCap: 1 << 20}.NewWriter(w)
	if err != nil {
		return fmt.Errorf("metadata tarball: %w", err)
	}
	tw := tar.NewWriter(xw)
	add := func(name string, mode int64, typ byte, body []byte) error {
		hdr := &tar.Header{Name: name, Mode: mode, Typeflag: typ, Size: int64(len(body)),
			ModTime: mtime, Uname: "root", Gname: "root", Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	if metadataYAML != nil {
		if err := add("metadata.yaml", 0o644, tar.TypeReg, metadataYAML); err != nil {
			return fmt.Errorf("metadata tarball: %w", err)
		}
	}
	if len(templates) > 0 {
		if err := add("templates/", 0o755, tar.TypeDir, nil); err != nil {
			return fmt.Errorf("metadata tarball: %w", err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(templates)) {
		if err := add("templates/"+name, 0o644, tar.TypeReg, templates[name]); err != nil {
			return fmt.Errorf("metadata tarball: template %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("metadata tarball: %w", err)
	}
	if err := xw.Close(); err != nil {
		return fmt.Errorf("metadata tarball: %w", err)
	}
	return nil
}
