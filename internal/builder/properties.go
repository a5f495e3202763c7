package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ulikunitz/xz"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/atomicfile"
	"github.com/incus-appliance/registry/internal/relations"
)

// Image properties. metadata.yaml's properties are what `incus image
// info` shows of an image imported from its files (and what an instance
// made from it gets as image.* keys); the build writes the appliance's
// relations there (appliance.Relations: relations.Provides and
// relations.Requires), beside distrobuilder's os, release and
// description. A build made before builds wrote them is brought up to
// date without running distrobuilder again: its metadata tarball is
// rewritten and its digests recorded again (syncProperties). (Editing
// the relations edits appliance.yaml: a new build.)

// ownedProperties are the metadata.yaml properties the build sets.
var ownedProperties = []string{relations.Provides, relations.Requires}

// withProperties returns metadata.yaml (as distrobuilder writes it: a
// top-level properties: block indented by two spaces) with each of the
// owned properties set to its value in props, or removed when props
// lacks it. Values are written as double-quoted strings (JSON's quoting
// is YAML's).
func withProperties(metadataYAML []byte, props map[string]string) ([]byte, error) {
	lines := strings.SplitAfter(string(metadataYAML), "\n")
	at := slices.IndexFunc(lines, func(l string) bool { return strings.TrimRight(l, "\r\n") == "properties:" })
	if at < 0 {
		return nil, fmt.Errorf("metadata.yaml has no properties: block")
	}
	out := slices.Clone(lines[:at+1])
	for _, k := range ownedProperties {
		if v, ok := props[k]; ok {
			out = append(out, "  "+k+": "+quote(v)+"\n")
		}
	}
	rest := lines[at+1:]
	for i := 0; i < len(rest); i++ {
		l := rest[i]
		key, _, _ := strings.Cut(strings.TrimPrefix(l, "  "), ":")
		if strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "   ") && slices.Contains(ownedProperties, key) {
			// An owned key written before, and its continuation lines.
			for i+1 < len(rest) && strings.HasPrefix(rest[i+1], "   ") {
				i++
			}
			continue
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, "")), nil
}

// quote writes v as a YAML double-quoted string: JSON's quoting, without
// escaping <, > and & (a constraint reads ">=1.1, <2").
func quote(v string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSuffix(b.String(), "\n")
}

// entriesWithProperties returns the metadata tarball's entries with
// metadata.yaml's properties set to props (withProperties).
func entriesWithProperties(entries []tarEntry, props map[string]string) ([]tarEntry, error) {
	out := slices.Clone(entries)
	for i, e := range out {
		if strings.TrimPrefix(e.hdr.Name, "./") == "metadata.yaml" {
			body, err := withProperties(e.body, props)
			if err != nil {
				return nil, err
			}
			out[i].body = body
			return out, nil
		}
	}
	return nil, fmt.Errorf("the metadata tarball has no metadata.yaml")
}

// propertiesDue returns the entries of t's metadata tarball with its
// properties brought up to date for a, when they are not (nil when they
// are).
func propertiesDue(a *appliance.Appliance, t Target) ([]tarEntry, error) {
	data, err := os.ReadFile(t.Metadata())
	if err != nil {
		return nil, err
	}
	zr, err := xz.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Metadata(), err)
	}
	entries, err := readTar(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Metadata(), err)
	}
	fresh, err := entriesWithProperties(entries, a.Relations())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Metadata(), err)
	}
	for i := range entries {
		if !bytes.Equal(entries[i].body, fresh[i].body) {
			return fresh, nil
		}
	}
	return nil, nil
}

// syncProperties rewrites the metadata tarball of t's build when its
// properties are not a's (propertiesDue), then records the build's
// digests again (the image's fingerprint changed); it reports whether it
// did. The tarball is replaced by a rename: a publisher reading the
// build meanwhile finds the record no longer matching and inspects the
// files.
func syncProperties(ctx context.Context, a *appliance.Appliance, t Target, epoch int64) (bool, error) {
	fresh, err := propertiesDue(a, t)
	if err != nil || fresh == nil {
		return false, err
	}
	out, err := renderTarball(fresh, epoch)
	if err != nil {
		return false, err
	}
	if err := atomicfile.Write(filepath.Join(t.Dir(), metadataFile), out, 0o644); err != nil {
		return false, err
	}
	return true, RecordDigests(ctx, t.Dir())
}
