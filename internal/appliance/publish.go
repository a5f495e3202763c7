package appliance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/registry"
)

// PublishRequests inspects every built architecture of the appliance (in
// outDir, as Build left them) and returns what to publish: the image with
// the appliance's aliases, description, version, custom metadata and
// profiles. Architectures not built are returned in missing; none built
// at all is an error.
func PublishRequests(ctx context.Context, a *Appliance, outDir string, extraAliases []string, progress func(string, int64, int64)) (reqs []registry.PublishRequest, missing []string, err error) {
	profiles := map[string]catalog.FileRef{}
	paths := map[string]string{}
	for _, name := range a.Profiles {
		ref, err := fileRef(a.ProfilePath(name))
		if err != nil {
			return nil, nil, err
		}
		profiles[name], paths[name] = ref, a.ProfilePath(name)
	}
	for _, arch := range a.Arches() {
		meta, root, err := Built(outDir, a.Name, arch)
		if errors.Is(err, ErrNotBuilt) {
			missing = append(missing, arch)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		im, err := image.Inspect(ctx, meta, root, image.Options{Arch: arch, PartSize: registry.UploadPartSize, Progress: progress})
		if err != nil {
			return nil, nil, err
		}
		img := registry.CatalogImage(a.Name, append(append([]string(nil), a.Aliases...), extraAliases...), nil, im)
		img.Description, img.ApplianceVersion, img.Custom, img.Profiles = a.Description, a.Version, a.Custom, profiles
		reqs = append(reqs, registry.PublishRequest{
			Image: img, MetadataPath: meta, RootPath: root, RootPartSHA256: im.Root.PartSHA256, ProfilePaths: paths,
		})
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
