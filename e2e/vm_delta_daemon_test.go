package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/vmdisk"
)

// reproducibleDisk assembles a VM disk the way the builder does
// (reproducible: identifiers from the identity, times clamped to the
// epoch, no qcow2 compression) from an EFI system partition holding a
// boot loader and a root tree holding files.
func reproducibleDisk(t *testing.T, files map[string]string) string {
	t.Helper()
	return vmDisk(t, efiLoader, files, vmdisk.DiskOptions{FreeMiB: 8, Identity: "appliance nginx/default/amd64", Epoch: t0.Unix()})
}

// VM disk deltas with the real Incus daemon. Two versions, each holding a
// container root and a VM disk, the disk rebuilt with one changed file:
// publish lists a disk-kvm.img.vcdiff delta naming the first version's
// VM delta anchor. A host holding the first VM image refreshes to the
// second by downloading that delta, not the disk, and its files hash to
// the new fingerprint (the client checks that too); a host holding the
// first container image refreshes by the squashfs delta and never
// touches the VM's files. The daemon need not run a VM for either.
func TestVMDeltaThroughIncusDaemon(t *testing.T) {
	requireLaunch(t, "1")
	requireTool(t, "incus")
	requireTool(t, "xdelta3")
	reg := filepath.Join(t.TempDir(), "registry")
	page := strings.Repeat("<p>an appliance page</p>\n", 4000)
	files := map[string]string{"sbin/init": "#!/bin/sh\n", "etc/hostname": "nginx\n", "var/www/html/index.html": page}
	disk1 := reproducibleDisk(t, files)
	files["var/www/html/index.html"] = page + "<!-- one changed file -->\n"
	disk2 := reproducibleDisk(t, files)
	v1 := chain(t, "nginx", t0, 2)
	publish := func(s sample, disk string) publishDelta {
		return publishJSON(t, nil, "nginx", "--bucket", reg, "--metadata", s.meta, "--rootfs", s.root, "--disk", disk)
	}
	publish(v1[0], disk1)
	vm1, vm2 := fingerprintOf(t, v1[0].meta, disk1), fingerprintOf(t, v1[1].meta, disk2)

	incusDaemon(t)
	url, cert, log := runEdgeproxyLogged(t, "--bucket", reg, "--catalog-ttl", "1ns")
	h := &deltaHost{t: t, reg: reg, incus: newClient(t, "incus", cert), log: log}
	addRemote(t, h.incus, "appliance", url, cert)
	h.incus.run(t, "image", "copy", "appliance:nginx", "local:", "--vm", "--auto-update", "--alias", "nginx-vm")
	h.incus.run(t, "image", "copy", "appliance:nginx", "local:", "--auto-update", "--alias", "nginx-ct")
	if got := localFingerprint(t, h.incus, "nginx-vm"); got != vm1 {
		t.Fatalf("the host holds VM image %s, want %s", got, vm1)
	}

	res := publish(v1[1], disk2)
	k1 := catalog.VersionKey(t0)
	var vmDelta, ctDelta publishedDelta
	for _, d := range res.Deltas {
		switch d.Base {
		case k1 + "-vm":
			vmDelta = d
		case k1:
			ctDelta = d
		}
	}
	disk2Size := fileSize(t, disk2)
	t.Logf("one changed file: disk delta %d bytes, full disk %d bytes (%.3f %%); note %q", vmDelta.Size, disk2Size,
		100*float64(vmDelta.Size)/float64(disk2Size), vmDelta.Note)
	if !vmDelta.Listed || !ctDelta.Listed || len(res.Deltas) != 2 {
		t.Fatalf("publish deltas %+v, want one to the disk (base %s-vm) and one to the root (base %s), both listed", res.Deltas, k1, k1)
	}

	fetched, printed := h.refresh("nginx-vm", sample{fp: vm2})
	t.Logf("host holding VM v1, refreshed to v2, downloaded:\n%s\nincus said: %s", fetched, printed)
	vmDisk2 := "images/" + vm2 + "/disk.qcow2"
	wantFetched(t, fetched, []string{vmDelta.Path}, []string{vmDisk2, ctDelta.Path, rootOf(v1[1])})

	fetched, _ = h.refresh("nginx-ct", v1[1])
	t.Logf("host holding container v1, refreshed to v2, downloaded:\n%s", fetched)
	wantFetched(t, fetched, []string{ctDelta.Path}, []string{vmDelta.Path, vmDisk2, rootOf(v1[1])})
	mustPublish(t, "verify", "--bucket", reg, "--deep")
}

// fileSize is the size of the file at path.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
