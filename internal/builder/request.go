package builder

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/sbom"
	"github.com/incus-appliance/registry/internal/vmdisk"
)

// FileOptions describe how a split image on the local disk is published.
type FileOptions struct {
	// Aliases are extra aliases besides the name.
	Aliases []string
	// Requirements are the image's Incus requirements.
	Requirements map[string]string
	// Arch, if set, is the architecture metadata.yaml must say.
	Arch string
	// Progress is called while the files are hashed.
	Progress func(path string, done, total int64)
	// VMDisk, if set, is a bootable VM disk (qcow2) published beside the
	// root in the same version, sharing the metadata tarball.
	VMDisk string
}

// FileRequest describes the split image made of the files meta and root
// and returns the request that publishes it as appliance name. It is the
// one place a publish request is assembled from local files; Requests
// adds what an appliance folder says.
//
// When the files are a build's outputs with their digest record still
// matching them (see resumeRecorded), the root is not read here: the
// upload reads it once, checking it against the record, and falls back
// to a full inspection if it differs. Otherwise the files are inspected
// now, each byte read once.
func FileRequest(ctx context.Context, name, meta, root string, o FileOptions) (registry.PublishRequest, error) {
	return fileRequest(ctx, name, meta, root, o, true)
}

func fileRequest(ctx context.Context, name, meta, root string, o FileOptions, useRecord bool) (registry.PublishRequest, error) {
	req, err := containerRequest(ctx, name, meta, root, o, useRecord)
	if err != nil {
		return req, err
	}
	if req.Image.RootKind == catalog.RootQCOW2 {
		if err := vmdisk.CheckBootable(root, req.Image.Arch); err != nil {
			return registry.PublishRequest{}, err
		}
	}
	if o.VMDisk != "" {
		if err := addVMDisk(ctx, &req, o.VMDisk, o.Progress); err != nil {
			return registry.PublishRequest{}, err
		}
	}
	return req, nil
}

// containerRequest is fileRequest without the VM disk.
func containerRequest(ctx context.Context, name, meta, root string, o FileOptions, useRecord bool) (registry.PublishRequest, error) {
	opts := image.Options{Arch: o.Arch, PartSize: registry.UploadPartSize, Progress: o.Progress}
	request := func(im *image.Image) registry.PublishRequest {
		return registry.PublishRequest{
			Image:        im.CatalogImage(name, o.Aliases, o.Requirements),
			MetadataPath: meta, RootPath: root, RootPartSHA256: im.Root.PartSHA256,
		}
	}
	if useRecord {
		if im, stream := resumeRecorded(ctx, meta, root, opts); im != nil {
			req := request(im)
			req.OpenRoot = stream.Open
			req.Reinspect = func(ctx context.Context) (registry.PublishRequest, error) {
				return fileRequest(ctx, name, meta, root, o, false)
			}
			return req, nil
		}
	}
	im, err := image.Inspect(ctx, meta, root, opts)
	if err != nil {
		return registry.PublishRequest{}, err
	}
	return request(im), nil
}

// Requests describes the builds of targets (of appliance a, as Container
// and VM left them, see FileRequest) and returns what to publish: the
// image with the appliance's aliases, description, version, custom
// metadata, profiles, SBOM and VM disk. The targets not built are
// returned in missing; none built at all is an error.
func Requests(ctx context.Context, a *appliance.Appliance, targets []Target, o FileOptions) (reqs []registry.PublishRequest, missing []Target, err error) {
	app, err := describe(a)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range targets {
		if err := t.built(); errors.Is(err, errNotBuilt) {
			missing = append(missing, t)
			continue
		}
		req, err := app.request(ctx, t, o)
		if err != nil {
			return nil, nil, err
		}
		reqs = append(reqs, req)
	}
	if len(reqs) == 0 {
		return nil, missing, fmt.Errorf("appliance %s is not built for any of %v: run `publish build %s` first", a.Name, a.Arches(), a.Name)
	}
	return reqs, missing, nil
}

// Request describes the build of one target of a (see Requests); not
// built is an error.
func Request(ctx context.Context, a *appliance.Appliance, t Target, o FileOptions) (registry.PublishRequest, error) {
	if err := t.built(); err != nil {
		return registry.PublishRequest{}, err
	}
	app, err := describe(a)
	if err != nil {
		return registry.PublishRequest{}, err
	}
	return app.request(ctx, t, o)
}

// described is what every request of an appliance carries: its profiles
// and its version line.
type described struct {
	a        *appliance.Appliance
	profiles map[string]catalog.FileRef
	paths    map[string]string
	line     string
}

func describe(a *appliance.Appliance) (*described, error) {
	d := &described{a: a, profiles: map[string]catalog.FileRef{}, paths: map[string]string{}}
	for _, name := range a.Profiles {
		ref, err := fileRef(a.ProfilePath(name))
		if err != nil {
			return nil, err
		}
		d.profiles[name], d.paths[name] = ref, a.ProfilePath(name)
	}
	if a.Lines() {
		var err error
		if d.line, err = catalog.LineOf(a.Version); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// request describes the build of t.
func (d *described) request(ctx context.Context, t Target, o FileOptions) (registry.PublishRequest, error) {
	a := d.a
	o.Arch, o.Aliases = t.Arch, append(append([]string(nil), a.Aliases...), o.Aliases...)
	if len(a.Requirements) > 0 {
		r := maps.Clone(a.Requirements)
		maps.Copy(r, o.Requirements)
		o.Requirements = r
	}
	if disk := existing(t.Disk()); disk != "" && a.HasVM() {
		o.VMDisk = disk
	}
	req, err := FileRequest(ctx, a.Name, t.Metadata(), t.Rootfs(), o)
	if err != nil {
		return req, err
	}
	var sbomRef *catalog.FileRef
	sbomPath := existing(t.file(sbom.FileName))
	if sbomPath != "" {
		ref, err := fileRef(sbomPath)
		if err != nil {
			return req, err
		}
		sbomRef = &ref
	}
	variant := t.Variant
	if t.IsDefault() {
		variant = appliance.VariantDefault
	}
	built, err := provenanceOf(a, t)
	if err != nil {
		return req, err
	}
	complete := func(req *registry.PublishRequest) {
		req.Provenance = built
		img := &req.Image
		img.Description, img.ApplianceVersion, img.Custom, img.Profiles = a.Description, a.Version, a.CatalogMetadata(), d.profiles
		img.ApplianceVariant, img.Variant = variant, variant
		img.Line = d.line
		if img.VM != nil {
			img.Requirements = vmRequirements(img.Requirements)
		}
		req.ProfilePaths = d.paths
		if sbomRef != nil {
			img.SBOM, req.SBOMPath = sbomRef, sbomPath
			if img.Custom == nil {
				img.Custom = map[string]string{}
			}
			img.Custom["sbom"] = catalog.SBOMPath(img.Fingerprint)
		}
	}
	complete(&req)
	if again := req.Reinspect; again != nil {
		req.Reinspect = func(ctx context.Context) (registry.PublishRequest, error) {
			req, err := again(ctx)
			complete(&req)
			return req, err
		}
	}
	return req, nil
}

func fileRef(path string) (catalog.FileRef, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return catalog.FileRef{}, err
	}
	return catalog.FileRef{SHA256: digest.Of(data), Size: int64(len(data))}, nil
}

// addVMDisk inspects the VM disk with the request's metadata tarball,
// checks it boots under UEFI, and adds it to the request.
func addVMDisk(ctx context.Context, req *registry.PublishRequest, disk string, progress func(string, int64, int64)) error {
	im, err := image.Inspect(ctx, req.MetadataPath, disk, image.Options{Arch: req.Image.Arch, PartSize: registry.UploadPartSize, Progress: progress})
	if err != nil {
		return err
	}
	if im.RootKind != catalog.RootQCOW2 {
		return fmt.Errorf("VM disk %s is a %s, not a qcow2 disk", disk, im.RootKind)
	}
	if err := vmdisk.CheckBootable(disk, im.Metadata.Arch); err != nil {
		return err
	}
	req.Image.VM = &catalog.VMDisk{Fingerprint: im.Fingerprint, Disk: catalog.FileRef{SHA256: im.Root.SHA256, Size: im.Root.Size}}
	req.VMDiskPath, req.VMDiskPartSHA256 = disk, im.Root.PartSHA256
	return nil
}

// vmRequirements adds what the appliance's VM disk needs: its boot loader
// is not signed for Secure Boot, which Incus enables by default.
func vmRequirements(r map[string]string) map[string]string {
	out := maps.Clone(r)
	if out == nil {
		out = map[string]string{}
	}
	if _, ok := out["secureboot"]; !ok {
		out["secureboot"] = "false"
	}
	return out
}

// RecordDigests inspects the fresh outputs in dir once (SHA-256s, upload
// part digests, fingerprint) and records them beside the outputs
// (image.RecordName), so that a publish uploads them without reading them
// first. Container calls it in its work folder, before the folder replaces the
// old outputs: the record appears together with the files it describes.
func RecordDigests(ctx context.Context, dir string) error {
	im, err := image.Inspect(ctx, filepath.Join(dir, metadataFile), filepath.Join(dir, rootfsFile),
		image.Options{PartSize: registry.UploadPartSize})
	if err != nil {
		return fmt.Errorf("the outputs do not make a valid image: %w", err)
	}
	rec, err := image.NewRecord(im, registry.UploadPartSize)
	if err != nil {
		return err
	}
	return image.WriteRecord(dir, rec)
}

// resumeRecorded returns the image meta and root make according to the
// digest record beside them (image.Resume), and the stream that reads the
// root checking it, when there is a record and it still matches the files:
// same folder, names, sizes and modification times, and the metadata
// tarball, re-read and re-hashed (it is small), the same. Otherwise nil:
// the caller inspects the files.
func resumeRecorded(ctx context.Context, meta, root string, opts image.Options) (*image.Image, *image.Stream) {
	dir := filepath.Dir(root)
	if filepath.Dir(meta) != dir {
		return nil, nil
	}
	rec, err := image.ReadRecord(dir)
	if err != nil {
		return nil, nil
	}
	im, stream, err := image.Resume(ctx, meta, root, rec, opts)
	if err != nil {
		return nil, nil
	}
	return im, stream
}
