package appliance

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/vmdisk"
)

const variantYAML = validYAML + "variants: [default, cloud]\ntypes: [container, vm]\n"

func TestVariantsAndTypesAreChecked(t *testing.T) {
	for yml, want := range map[string]string{
		validYAML + "variants: [default, fancy]\n": `variants: unknown "fancy"`,
		validYAML + "variants: [cloud, cloud]\n":   `"cloud" is listed twice`,
		validYAML + "types: [vm]\n":                "list container too",
		validYAML + "types: [container, lxc]\n":    `types: unknown "lxc"`,
	} {
		_, err := Load(writeAppliance(t, yml), "web")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", yml, err, want)
		}
	}
	a, err := Load(writeAppliance(t, variantYAML), "web")
	if err != nil {
		t.Fatal(err)
	}
	if !a.HasVM() || strings.Join(a.VariantList(), ",") != "default,cloud" {
		t.Errorf("variants %v, vm %v", a.VariantList(), a.HasVM())
	}
}

// The cloud variant builds from the merged template plus cloud-init into
// OUT/NAME/cloud/ARCH and is published as product NAME/cloud; a VM disk
// beside the default build joins its request, and a disk that cannot boot
// stops the publish.
func TestCloudVariantBuildAndVMDiskPublish(t *testing.T) {
	root := writeAppliance(t, variantYAML)
	a, err := Load(root, "web")
	if err != nil {
		t.Fatal(err)
	}
	bin, _ := fakeDistrobuilder(t)
	out := t.TempDir()
	ctx := context.Background()
	for _, v := range []string{"default", "cloud"} {
		if _, err := Build(ctx, a, BuildOptions{OutDir: out, Arch: "amd64", Compression: "gzip", Distrobuilder: bin, Variant: v}); err != nil {
			t.Fatal(err)
		}
	}
	tmpl, _ := os.ReadFile(filepath.Join(filepath.Dir(bin), "template.yaml"))
	if !strings.Contains(string(tmpl), "cloud-init") || !strings.Contains(string(tmpl), "nginx-light") || !strings.Contains(string(tmpl), "release: bookworm") {
		t.Errorf("the cloud build's template is not the merged one with cloud-init:\n%s", tmpl)
	}
	if kept, _ := os.ReadFile(filepath.Join(out, "web", "cloud", "amd64", MergedTemplateName)); !strings.Contains(string(kept), "cloud-init") {
		t.Errorf("the cloud build kept no template with cloud-init beside its log:\n%s", kept)
	}
	if _, _, err := Built(out, "web/cloud", "amd64"); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(ctx, a, BuildOptions{OutDir: out, Arch: "amd64", Distrobuilder: bin, Variant: "minimal"}); err == nil {
		t.Error("an undeclared variant was built")
	}

	reqs, _, err := PublishRequests(ctx, a, out, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := catalog.New()
	var products []string
	for _, r := range reqs {
		res, err := c.Add(r.Image)
		if err != nil {
			t.Fatal(err)
		}
		products = append(products, res.Product)
	}
	if strings.Join(products, " ") != "web:amd64 web/cloud:amd64" {
		t.Errorf("products %v", products)
	}
	if got := c.Products["web/cloud:amd64"].Aliases; got != "web/cloud,www/cloud" {
		t.Errorf("cloud aliases %q", got)
	}

	// A VM disk beside the default build.
	for _, tool := range vmdisk.Tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("REGISTRY_E2E") == "require" {
				t.Fatalf("%s not found", tool)
			}
			t.Skipf("%s not found", tool)
		}
	}
	esp := t.TempDir()
	os.MkdirAll(filepath.Join(esp, "EFI/BOOT"), 0o755)
	os.WriteFile(filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"), []byte("MZ fake loader"), 0o644)
	disk := filepath.Join(out, "web", "amd64", DiskName)
	if err := vmdisk.Assemble(ctx, vmdisk.DiskOptions{ESPDir: esp, ESPMiB: 34, Out: disk}); err != nil {
		t.Fatal(err)
	}
	reqs, _, err = PublishRequests(ctx, a, out, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if vm := reqs[0].Image.VM; vm == nil || reqs[0].VMDiskPath != disk || reqs[0].Image.Requirements["secureboot"] != "false" {
		t.Errorf("default request: VM %+v, path %q, requirements %v", vm, reqs[0].VMDiskPath, reqs[0].Image.Requirements)
	}
	if reqs[1].Image.VM != nil {
		t.Error("the cloud variant got the default build's disk")
	}
	os.WriteFile(filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"), []byte("#!/bin/sh"), 0o644)
	if err := vmdisk.Assemble(ctx, vmdisk.DiskOptions{ESPDir: esp, ESPMiB: 34, Out: disk}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := PublishRequests(ctx, a, out, FileOptions{}); err == nil || !strings.Contains(err.Error(), "not bootable") {
		t.Errorf("a disk that cannot boot: %v", err)
	}
}
