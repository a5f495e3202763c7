package appliance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/registry"
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
// one place a publish request is assembled from local files;
// PublishRequests adds what an appliance folder says.
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

// PublishRequests describes every built architecture of the appliance (in
// outDir, as Build left them, see FileRequest) and returns what to publish: the image with
// the appliance's aliases, description, version, custom metadata and
// profiles. Architectures not built are returned in missing; none built
// at all is an error.
func PublishRequests(ctx context.Context, a *Appliance, outDir string, o FileOptions) (reqs []registry.PublishRequest, missing []string, err error) {
	profiles := map[string]catalog.FileRef{}
	paths := map[string]string{}
	for _, name := range a.Profiles {
		ref, err := fileRef(a.ProfilePath(name))
		if err != nil {
			return nil, nil, err
		}
		profiles[name], paths[name] = ref, a.ProfilePath(name)
	}
	line := ""
	if a.VersionAliases {
		var err error
		if line, err = catalog.LineOf(a.Version); err != nil {
			return nil, nil, err
		}
	}
	for _, variant := range a.VariantList() {
		name := VariantDir(a.Name, variant)
		for _, arch := range a.Arches() {
			meta, root, err := Built(outDir, name, arch)
			if errors.Is(err, ErrNotBuilt) {
				missing = append(missing, VariantDir(arch, variant)) // amd64, amd64/cloud
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			ao := o
			ao.Arch, ao.Aliases = arch, append(append([]string(nil), a.Aliases...), o.Aliases...)
			if len(a.Requirements) > 0 {
				ao.Requirements = maps.Clone(a.Requirements)
				maps.Copy(ao.Requirements, o.Requirements)
			}
			if disk := builtDisk(outDir, name, arch); disk != "" && a.HasVM() {
				ao.VMDisk = disk
			}
			req, err := FileRequest(ctx, a.Name, meta, root, ao)
			if err != nil {
				return nil, nil, err
			}
			var sbomRef *catalog.FileRef
			sbomPath := BuiltSBOM(outDir, name, arch)
			if sbomPath != "" {
				ref, err := fileRef(sbomPath)
				if err != nil {
					return nil, nil, err
				}
				sbomRef = &ref
			}
			complete := func(req *registry.PublishRequest) {
				img := &req.Image
				img.Description, img.ApplianceVersion, img.Custom, img.Profiles = a.Description, a.Version, a.CatalogMetadata(), profiles
				img.ApplianceVariant, img.Variant = variant, variant
				img.Line = line
				if img.VM != nil {
					img.Requirements = vmRequirements(img.Requirements)
				}
				req.ProfilePaths = paths
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
			reqs = append(reqs, req)
		}
	}
	if len(reqs) == 0 {
		return nil, missing, fmt.Errorf("appliance %s is not built for any of %v: run `publish build %s` first", a.Name, a.Arches(), a.Name)
	}
	return reqs, missing, nil
}

func fileRef(path string) (catalog.FileRef, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return catalog.FileRef{}, err
	}
	sum := sha256.Sum256(data)
	return catalog.FileRef{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}, nil
}
