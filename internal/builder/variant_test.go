package builder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/suitetest"
	"github.com/incus-appliance/registry/internal/vmdisk"
)

const variantYAML = validYAML + "variants: [default, cloud]\ntypes: [container, vm]\n"

// Targets lists an appliance's builds variant by variant, each with its
// folder and label; the architectures it does not list are left out and
// named once.
func TestTargets(t *testing.T) {
	a := web(t, variantYAML)
	targets, unlisted := Targets("/b", a, nil, []string{"arm64", "riscv64", "amd64"})
	var got []string
	for _, tg := range targets {
		got = append(got, tg.Label()+"="+tg.Dir())
	}
	want := "web/arm64=/b/web/arm64 web/amd64=/b/web/amd64 web/cloud/arm64=/b/web/cloud/arm64 web/cloud/amd64=/b/web/cloud/amd64"
	if strings.Join(got, " ") != want || strings.Join(unlisted, ",") != "riscv64" {
		t.Errorf("targets %v, unlisted %v\nwant %s", got, unlisted, want)
	}
	if all, _ := Targets("/b", a, []string{"cloud"}, nil); len(all) != 2 || all[1].Metadata() != "/b/web/cloud/arm64/incus.tar.xz" || all[1].Disk() != "/b/web/cloud/arm64/disk.qcow2" {
		t.Errorf("cloud targets %+v", all)
	}
	if tg := (Target{Root: "/b", Name: "web", Variant: "default", Arch: "amd64"}); tg.Label() != "web/amd64" || tg.Rootfs() != "/b/web/amd64/rootfs.squashfs" || !tg.IsDefault() {
		t.Errorf("default variant target %s %s", tg.Label(), tg.Rootfs())
	}
}

// The cloud variant builds from the merged template plus cloud-init into
// OUT/NAME/cloud/ARCH and is published as product NAME/cloud; a VM disk
// beside the default build joins its request, and a disk that cannot boot
// stops the publish.
func TestCloudVariantBuildAndVMDiskPublish(t *testing.T) {
	a := web(t, variantYAML)
	bin, _ := fakeDistrobuilder(t)
	out := t.TempDir()
	ctx := context.Background()
	targets, _ := Targets(out, a, nil, nil)
	for _, v := range []string{"default", "cloud"} {
		if _, err := Container(ctx, a, Target{Root: out, Name: "web", Variant: v, Arch: "amd64"}, Options{Compression: "gzip", Distrobuilder: bin}); err != nil {
			t.Fatal(err)
		}
	}
	tmpl, _ := os.ReadFile(filepath.Join(filepath.Dir(bin), "template.yaml"))
	if !strings.Contains(string(tmpl), "cloud-init") || !strings.Contains(string(tmpl), "nginx-light") || !strings.Contains(string(tmpl), "release: bookworm") {
		t.Errorf("the cloud build's template is not the merged one with cloud-init:\n%s", tmpl)
	}
	cloud := Target{Root: out, Name: "web", Variant: "cloud", Arch: "amd64"}
	if kept, _ := os.ReadFile(cloud.Template()); !strings.Contains(string(kept), "cloud-init") {
		t.Errorf("the cloud build kept no template with cloud-init beside its log:\n%s", kept)
	}
	if err := cloud.built(); err != nil {
		t.Fatal(err)
	}
	if _, err := Container(ctx, a, Target{Root: out, Name: "web", Variant: "minimal", Arch: "amd64"}, Options{Distrobuilder: bin}); err == nil {
		t.Error("an undeclared variant was built")
	}

	reqs, missing, err := Requests(ctx, a, targets, FileOptions{})
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
	// Lines by default: a product per MAJOR.MINOR.
	if strings.Join(products, " ") != "web:1.2:amd64 web/cloud:1.2:amd64" || len(missing) != 2 || missing[0].Label() != "web/arm64" || missing[1].Label() != "web/cloud/arm64" {
		t.Errorf("products %v, missing %v", products, missing)
	}
	if got := c.Products["web/cloud:1.2:amd64"].Aliases; got != "web/cloud,web/1.2/cloud,web/1/cloud,www/cloud" {
		t.Errorf("cloud aliases %q", got)
	}

	// A VM disk beside the default build.
	suitetest.RequireTools(t, vmdisk.Tools...)
	esp := t.TempDir()
	os.MkdirAll(filepath.Join(esp, "EFI/BOOT"), 0o755)
	os.WriteFile(filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"), []byte("MZ fake loader"), 0o644)
	disk := webAmd64(out).Disk()
	if err := vmdisk.Assemble(ctx, vmdisk.DiskOptions{ESPDir: esp, ESPMiB: 34, Out: disk}); err != nil {
		t.Fatal(err)
	}
	reqs, _, err = Requests(ctx, a, targets, FileOptions{})
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
	if _, _, err := Requests(ctx, a, targets, FileOptions{}); err == nil || !strings.Contains(err.Error(), "not bootable") {
		t.Errorf("a disk that cannot boot: %v", err)
	}
}
