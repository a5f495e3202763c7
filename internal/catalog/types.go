// Package catalog is the SimpleStreams model of the registry — the two JSON
// files Incus and LXD clients read, streams/v1/index.json and
// streams/v1/images.json — and the pure rules for changing them: adding an
// image, adding aliases, removing versions, keeping the newest N, and the
// bookkeeping that makes concurrent publishing and pruning safe.
//
// Nothing here does I/O. Callers read the bytes, Parse them, apply an
// operation, Marshal, and write the bytes back conditionally.
package catalog

import "time"

// Well-known values of a SimpleStreams image registry (its paths are in
// paths.go).
const (
	FormatIndex    = "index:1.0"
	FormatProducts = "products:1.0"
	DataTypeImages = "image-downloads"
	// ContentID is the content_id of images.json and the key of its entry
	// in index.json.
	ContentID = "images"
)

// Item file types (the "ftype" field) this registry writes or reads.
const (
	FTypeIncusMeta  = "incus.tar.xz"
	FTypeLXDMeta    = "lxd.tar.xz"
	FTypeSquashfs   = "squashfs"
	FTypeRootTarXZ  = "root.tar.xz"
	FTypeDiskKVMImg = "disk-kvm.img"
	// FTypeProfile is an Incus profile shipped with an appliance; clients
	// ignore items of types they do not know.
	FTypeProfile = "incus-profile.yaml"
	// FTypeSBOM is the image's SPDX software bill of materials (JSON).
	FTypeSBOM = "sbom.spdx.json"
	// FTypeProvenance is the image's build provenance: an in-toto
	// Statement with a SLSA Provenance predicate (JSON).
	FTypeProvenance = "provenance.intoto.json"
)

// Index is streams/v1/index.json: the entry point every client fetches.
type Index struct {
	Format string `json:"format"`
	// Stamp is set in a signed registry (stamp.go).
	Stamp
	Index map[string]IndexEntry `json:"index"`
	// compact: written without indentation (the index of a sharded
	// registry lists every product and alias: megabytes at scale).
	compact bool
}

// IndexEntry points at one product file. Clients use it only when DataType
// is "image-downloads" and Products is non-empty.
type IndexEntry struct {
	DataType string   `json:"datatype"`
	Path     string   `json:"path"`
	Format   string   `json:"format"`
	Products []string `json:"products"`
	// Aliases, in a sharded registry, are the "alias@arch" claims of the
	// file (layout.go); clients ignore them.
	Aliases []string `json:"registry_aliases,omitempty"`
	// SHA256, in a signed registry, is the digest of the product file as
	// of this index's write (stamp.go); clients ignore it.
	SHA256 string `json:"registry_sha256,omitempty"`
}

// Catalog is streams/v1/images.json: every product, its versions and their
// files, plus the registry's own bookkeeping (State), which clients ignore.
type Catalog struct {
	// ContentID is the file's name in index.json ("images", "images-K").
	ContentID string `json:"content_id"`
	DataType  string `json:"datatype"`
	// Format is FormatProducts, or FormatRoot for the root of several
	// catalog files (layout.go).
	Format  string `json:"format"`
	License string `json:"license,omitempty"`
	// Stamp is set in a signed registry (stamp.go), before the products so
	// that ReadStamp finds it without reading them.
	Stamp
	// Products are keyed by product key (ProductKey).
	Products map[string]*Product `json:"products"`
	State    *State              `json:"registry_state,omitempty"`
}

// Product is one image lineage: an appliance on one architecture. Incus
// lists each version as an image; only the newest carries the aliases.
type Product struct {
	// Aliases is ONE comma-joined string ("nginx,web"); Incus adds
	// "<alias>/<arch>" for each by itself.
	Aliases      string            `json:"aliases"`
	Arch         string            `json:"arch"`
	OS           string            `json:"os"`
	Release      string            `json:"release"`
	ReleaseTitle string            `json:"release_title"`
	Variant      string            `json:"variant,omitempty"`
	Requirements map[string]string `json:"requirements,omitempty"`
	SupportEOL   string            `json:"support_eol,omitempty"`
	Supported    bool              `json:"supported,omitempty"`
	// Version is the appliance's own version (shown by Incus as the
	// image's "version" property).
	Version string `json:"version,omitempty"`
	// Custom is the appliance's free-form metadata (appliance.yaml
	// "custom"); clients ignore it.
	Custom map[string]string `json:"custom,omitempty"`
	// Line is the version line ("MAJOR.MINOR") of a line product
	// (lines.go); clients ignore it.
	Line string `json:"appliance_line,omitempty"`
	// Writer is who wrote the product: WriterPublish, or MirrorWriter of
	// a source (writer.go); clients ignore it.
	Writer   string              `json:"registry_writer,omitempty"`
	Versions map[string]*Version `json:"versions"`
}

// Version is one published build of a product. Its key starts with
// YYYYMMDD (Incus skips it otherwise) and, for versions this registry
// writes, is VersionKey(creation time): fixed width, UTC.
type Version struct {
	Items   map[string]Item `json:"items"`
	Label   string          `json:"label,omitempty"`
	PubName string          `json:"pubname,omitempty"`
	// Appliance is what the version records of the appliance build it is
	// (relations.go); clients ignore it.
	Appliance ApplianceBuild `json:"appliance,omitzero"`
}

// Item is one downloadable file of a version. The metadata items carry the
// image fingerprint in the combined_* field matching the root's ftype;
// without it Incus silently hides the image.
type Item struct {
	FType                    string `json:"ftype"`
	Path                     string `json:"path"`
	SHA256                   string `json:"sha256"`
	Size                     int64  `json:"size"`
	MD5                      string `json:"md5,omitempty"`
	CombinedSHA256           string `json:"combined_sha256,omitempty"`
	CombinedSquashfsSHA256   string `json:"combined_squashfs_sha256,omitempty"`
	CombinedRootXZSHA256     string `json:"combined_rootxz_sha256,omitempty"`
	CombinedDiskKVMImgSHA256 string `json:"combined_disk-kvm-img_sha256,omitempty"`
	DeltaBase                string `json:"delta_base,omitempty"`
}

// State is the registry's bookkeeping, stored inside images.json so that it
// changes atomically with the catalog it describes. Clients ignore it.
type State struct {
	// Commits are the most recent commit ids, oldest first, so a publisher
	// whose write landed but whose response was lost can recognise success.
	Commits []Commit `json:"commits,omitempty"`
	// Pending are publishes in flight: files being uploaded that a prune
	// must not delete although nothing references them yet.
	Pending []Pending `json:"pending,omitempty"`
	// Retired maps a file path to when the last catalog reference to it
	// was removed; a prune waits a grace period after that time.
	Retired map[string]time.Time `json:"retired,omitempty"`
	// Pruning is the prune currently deleting files, if any.
	Pruning *Pruning `json:"pruning,omitempty"`
	// Shards, in the root (images.json) of a sharded registry, is its
	// number of product files (layout.go).
	Shards int `json:"shards,omitempty"`
}

// Commit records one successful catalog write.
type Commit struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// Pending is a publisher's intent: until Expires, Paths are protected from
// prune and Product counts as present for index.json.
type Pending struct {
	ID      string    `json:"id"`
	Product string    `json:"product"`
	Paths   []string  `json:"paths"`
	Expires time.Time `json:"expires"`
	// Aliases, in a sharded registry, are the "alias@arch" claims the
	// publish makes (layout.go).
	Aliases []string `json:"aliases,omitempty"`
}

// Pruning announces that a prune may delete Paths until Deadline. A
// publisher that wants to reuse one of those files waits until the prune
// ended (or its deadline passed) and then checks the file again.
type Pruning struct {
	ID       string    `json:"id"`
	Deadline time.Time `json:"deadline"`
	Paths    []string  `json:"paths"`
}
