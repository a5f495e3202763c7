package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ulikunitz/xz"
	"gopkg.in/yaml.v3"

	"github.com/incus-appliance/registry/internal/yamlnode"
)

// Reproducible builds: the same inputs give the same incus.tar.xz and
// rootfs.squashfs, so the same image fingerprint, and a changed input
// changes only the blocks it touches (small deltas). Three things make
// that so:
//   - SOURCE_DATE_EPOCH (defaultSourceDateEpoch unless set in the
//     environment) is given to distrobuilder, whose mksquashfs (reproducible
//     by default since squashfs-tools 4.4) then uses it as the filesystem
//     time and clamps every newer file time to it;
//   - a last post-files action (cleanupAction) deletes what a build writes
//     that differs every time: logs, apt lists and caches, ldconfig's aux
//     cache, backup files, dbus's random machine id, and the day stamp in
//     /etc/shadow;
//   - the metadata tarball is rewritten with fixed entry times, owners and
//     order; when the root came out byte-identical to the previous build's
//     and the metadata differs only in its build-time lines (dates, serial),
//     the previous tarball is kept: an unchanged rebuild is then the same
//     image (same version key and fingerprint), nothing to publish. A
//     changed root gets distrobuilder's fresh creation date, so a new
//     version key.

// defaultSourceDateEpoch is the SOURCE_DATE_EPOCH of builds when the
// environment sets none (2026-01-01T00:00:00Z). It is a constant, not the
// build time, so that files a build creates get the same time in every
// build.
const defaultSourceDateEpoch = 1767225600

// sourceDateEpoch returns SOURCE_DATE_EPOCH from the environment, or the
// default.
func sourceDateEpoch() (int64, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return defaultSourceDateEpoch, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a Unix time in seconds", v)
	}
	return n, nil
}

// cleanupAction is the post-files action appended to every appliance's
// template: it runs last, inside the image.
func cleanupAction(epoch int64) string {
	return `#!/bin/sh
# Added by publish build (reproducible builds): nothing that differs from
# one build to the next stays in the image.
set -eu
find /var/log -type f -delete
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*
rm -f /var/cache/ldconfig/aux-cache /var/cache/debconf/*-old /var/lib/dpkg/*-old
rm -f /etc/passwd- /etc/group- /etc/shadow- /etc/gshadow- /etc/subuid- /etc/subgid-
rm -f /etc/ssh/ssh_host_*
rm -f /root/.bash_history /root/.ash_history /root/.lesshst /root/.viminfo /root/.python_history
# Every instance makes its own machine id (CheckClean wants it empty).
: > /etc/machine-id
# dbus's postinst generates a random id; every instance gets its own
# /etc/machine-id at first boot, and dbus reads it through this link.
if [ -e /var/lib/dbus/machine-id ]; then ln -sf /etc/machine-id /var/lib/dbus/machine-id; fi
rm -rf /tmp/* /var/tmp/*
# The last-password-change day of every account: the build's day otherwise.
if [ -f /etc/shadow ]; then sed -i -E 's/^([^:]*:[^:]*:)[0-9]+:/\1` + strconv.FormatInt(epoch/86400, 10) + `:/' /etc/shadow; fi
`
}

// writeReproducibleTemplate writes the appliance's template with
// cleanupAction appended to its actions.
func writeReproducibleTemplate(src, dst string, epoch int64) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return fmt.Errorf("%s: not a YAML mapping", src)
	}
	top := doc.Content[0]
	actions := yamlnode.Value(top, "actions")
	if actions == nil || actions.Kind != yaml.SequenceNode {
		actions = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		top.Content = append(top.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "actions"}, actions)
	}
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
	actions.Content = append(actions.Content, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		str("trigger"), str("post-files"), str("action"), str(cleanupAction(epoch)),
	}})
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, out, 0o644)
}

// datedRe matches the lines of metadata.yaml that distrobuilder derives
// from the build time: creation and expiry dates, and the serial and the
// name that contains it.
var datedRe = regexp.MustCompile(`(?m)^(creation_date|expiry_date|  serial|  name):.*$`)

// tarEntry is one file of the metadata tarball.
type tarEntry struct {
	hdr  tar.Header
	body []byte
}

// writeDeterministicMetadata rewrites the metadata tarball distrobuilder
// left in work (incus.tar.xz, or incus.tar.gz with --compression gzip) as
// work/incus.tar.xz with fixed times, owners and order, and the image
// properties props (properties.go). When the new root
// equals the previous build's (in prevDir) byte for byte and the metadata
// differs from the previous only in its build-time lines (datedRe), the
// previous tarball is kept: the same image, nothing new to publish.
func writeDeterministicMetadata(work, prevDir string, epoch int64, props map[string]string) error {
	if !exist(filepath.Join(work, rootfsFile)) {
		return fmt.Errorf("distrobuilder wrote no %s", rootfsFile)
	}
	entries, err := readMetadataTarball(work)
	if err != nil {
		return err
	}
	if entries, err = entriesWithProperties(entries, props); err != nil {
		return err
	}
	out, err := renderTarball(entries, epoch)
	if err != nil {
		return err
	}
	if prev, err := os.ReadFile(filepath.Join(prevDir, metadataFile)); err == nil && sameFile(filepath.Join(work, rootfsFile), filepath.Join(prevDir, rootfsFile)) {
		if sameUndated(entries, prev, epoch) {
			out = prev
		}
	}
	_ = os.Remove(filepath.Join(work, metadataGzipFile))
	return os.WriteFile(filepath.Join(work, metadataFile), out, 0o644)
}

// sameUndated reports whether entries and the tarball prev hold the same
// files once metadata.yaml's build-time lines are blanked.
func sameUndated(entries []tarEntry, prev []byte, epoch int64) bool {
	zr, err := xz.NewReader(bytes.NewReader(prev))
	if err != nil {
		return false
	}
	old, err := readTar(zr)
	if err != nil {
		return false
	}
	a, errA := renderTarball(undated(entries), epoch)
	b, errB := renderTarball(undated(old), epoch)
	return errA == nil && errB == nil && bytes.Equal(a, b)
}

// undated blanks metadata.yaml's build-time lines.
func undated(entries []tarEntry) []tarEntry {
	out := slices.Clone(entries)
	for i, e := range out {
		if strings.TrimPrefix(e.hdr.Name, "./") == "metadata.yaml" {
			out[i].body = datedRe.ReplaceAll(e.body, []byte("$1: -"))
		}
	}
	return out
}

// metadataGzipFile is the metadata tarball distrobuilder writes with
// --compression gzip.
const metadataGzipFile = "incus.tar.gz"

// readMetadataTarball reads the metadata tarball distrobuilder left in
// work, xz- or gzip-compressed.
func readMetadataTarball(work string) ([]tarEntry, error) {
	for _, c := range []struct {
		name string
		open func(io.Reader) (io.Reader, error)
	}{
		{metadataFile, func(r io.Reader) (io.Reader, error) { return xz.NewReader(r) }},
		{metadataGzipFile, func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
	} {
		f, err := os.Open(filepath.Join(work, c.name))
		if err != nil {
			continue
		}
		defer f.Close()
		r, err := c.open(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		return readTar(r)
	}
	return nil, fmt.Errorf("distrobuilder wrote no %s or %s (use --compression xz or gzip)", metadataFile, metadataGzipFile)
}

func readTar(r io.Reader) ([]tarEntry, error) {
	var out []tarEntry
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("metadata tarball: %w", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("metadata tarball: %w", err)
		}
		out = append(out, tarEntry{hdr: *hdr, body: body})
	}
}

// renderTarball writes entries sorted by name, owned by root, with time
// epoch, xz-compressed (the Go xz writer is deterministic).
func renderTarball(entries []tarEntry, epoch int64) ([]byte, error) {
	entries = slices.Clone(entries)
	slices.SortFunc(entries, func(a, b tarEntry) int { return strings.Compare(a.hdr.Name, b.hdr.Name) })
	var buf bytes.Buffer
	xw, err := xz.NewWriter(&buf)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(xw)
	t := time.Unix(epoch, 0).UTC()
	for _, e := range entries {
		h := tar.Header{
			Typeflag: e.hdr.Typeflag, Name: e.hdr.Name, Linkname: e.hdr.Linkname,
			Mode: e.hdr.Mode & 0o7777, ModTime: t, Format: tar.FormatPAX,
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := xw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sameFile reports whether two files have the same bytes.
func sameFile(a, b string) bool {
	sum := func(p string) ([]byte, int64, bool) {
		f, err := os.Open(p)
		if err != nil {
			return nil, 0, false
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		return h.Sum(nil), n, err == nil
	}
	ha, na, oka := sum(a)
	hb, nb, okb := sum(b)
	return oka && okb && na == nb && bytes.Equal(ha, hb)
}
