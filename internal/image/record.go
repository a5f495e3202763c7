package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/incus-appliance/registry/internal/atomicfile"
	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
)

// RecordName is the file, beside the image files, that holds their Record.
const RecordName = "digests.json"

// recordVersion is bumped whenever the meaning of a Record changes; a
// record of another version is ignored (the files are inspected instead).
const recordVersion = 1

// Record is what an Inspect of freshly written image files found, kept
// beside them so that a later publish can skip its own inspection pass:
// each file's size, modification time and SHA-256, the root's part digests
// and the combined fingerprint. A record is only a hint: Resume trusts it
// only while the files' sizes and modification times are unchanged and the
// metadata's bytes are the recorded ones, and the store checks every root
// byte against the recorded digests while the root is uploaded.
type Record struct {
	Version     int              `json:"version"`
	Fingerprint string           `json:"fingerprint"`
	RootKind    catalog.RootKind `json:"root_kind"`
	Metadata    RecordedFile     `json:"metadata"`
	Root        RecordedFile     `json:"root"`
	// PartSize is the chunk size of Root.PartSHA256 (0: none recorded).
	PartSize int64 `json:"part_size,omitempty"`
	// Check is the SHA-256 of the record's JSON without Check: a record
	// damaged or edited by hand (digests that do not belong together) is
	// not used. It does not stop forgery: whoever can write the record
	// can write the files it describes.
	Check string `json:"check"`
}

// checksum returns rec's Check value.
func (rec Record) checksum() string {
	rec.Check = ""
	data, _ := json.Marshal(rec)
	return digest.Of(data)
}

// RecordedFile is one file of a Record, named relative to the record.
type RecordedFile struct {
	Name       string   `json:"name"`
	Size       int64    `json:"size"`
	ModTimeNS  int64    `json:"mtime_ns"`
	SHA256     string   `json:"sha256"`
	PartSHA256 []string `json:"part_sha256,omitempty"`
}

// NewRecord records im, the result of an Inspect with opts.PartSize =
// partSize: it stats both files for their modification times, which
// therefore must not change between the Inspect and this call.
func NewRecord(im *Image, partSize int64) (*Record, error) {
	rec := &Record{Version: recordVersion, Fingerprint: im.Fingerprint, RootKind: im.RootKind, PartSize: partSize}
	if len(im.Root.PartSHA256) == 0 {
		rec.PartSize = 0
	}
	for _, f := range []struct {
		to   *RecordedFile
		from File
	}{{&rec.Metadata, im.MetadataFile}, {&rec.Root, im.Root}} {
		st, err := os.Stat(f.from.Path)
		if err != nil {
			return nil, err
		}
		if st.Size() != f.from.Size {
			return nil, fmt.Errorf("record %s: changed while it was inspected", f.from.Path)
		}
		*f.to = RecordedFile{Name: filepath.Base(f.from.Path), Size: f.from.Size, ModTimeNS: st.ModTime().UnixNano(),
			SHA256: f.from.SHA256, PartSHA256: slices.Clone(f.from.PartSHA256)}
	}
	return rec, nil
}

// WriteRecord writes rec to dir/RecordName atomically (a temporary file
// renamed over it), so a reader sees the old record, the new one or none.
func WriteRecord(dir string, rec *Record) error {
	sealed := *rec
	sealed.Check = sealed.checksum()
	data, err := json.MarshalIndent(sealed, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, RecordName), append(data, '\n'), 0o644)
}

// ErrNoRecord is returned by ReadRecord when dir has no usable record.
var ErrNoRecord = errors.New("no digest record")

// ReadRecord reads dir/RecordName. A missing, unreadable or other-version
// record is ErrNoRecord (wrapped): the caller inspects the files instead.
func ReadRecord(dir string) (*Record, error) {
	data, err := os.ReadFile(filepath.Join(dir, RecordName))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoRecord, err)
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoRecord, RecordName, err)
	}
	if rec.Version != recordVersion {
		return nil, fmt.Errorf("%w: %s has version %d, not %d", ErrNoRecord, RecordName, rec.Version, recordVersion)
	}
	if rec.Check != rec.checksum() {
		return nil, fmt.Errorf("%w: %s is damaged (its check does not match its content)", ErrNoRecord, RecordName)
	}
	return &rec, nil
}

// unchanged reports, as an error naming the file, how path no longer
// matches its recorded size and modification time.
func (f RecordedFile) unchanged(path string) error {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return err
	case filepath.Base(path) != f.Name:
		return fmt.Errorf("%s: the record is for %s", path, f.Name)
	case st.Size() != f.Size:
		return fmt.Errorf("%s: size %d, recorded %d", path, st.Size(), f.Size)
	case st.ModTime().UnixNano() != f.ModTimeNS:
		return fmt.Errorf("%s: modified after it was recorded", path)
	}
	return nil
}
