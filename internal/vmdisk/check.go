package vmdisk

import (
	"fmt"
	"os"
)

// bootLoaders is the removable-media boot loader path UEFI firmware
// starts on each architecture.
var bootLoaders = map[string]string{
	"amd64": "EFI/BOOT/BOOTX64.EFI",
	"arm64": "EFI/BOOT/BOOTAA64.EFI",
}

// BootLoader returns the UEFI removable-media boot loader path for a
// canonical architecture.
func BootLoader(arch string) (string, bool) {
	p, ok := bootLoaders[arch]
	return p, ok
}

// CheckBootable checks that the qcow2 disk at path can boot under UEFI on
// arch (canonical name), as Incus boots VMs: a GPT with an EFI system
// partition holding a FAT file system with the firmware's default boot
// loader (EFI/BOOT/BOOTX64.EFI on amd64), an EFI (PE) executable. The
// error says what is missing.
func CheckBootable(path, arch string) error {
	loader, ok := bootLoaders[arch]
	if !ok {
		return fmt.Errorf("VM disk %s: no UEFI boot loader path known for %s", path, arch)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fail := func(err error) error { return fmt.Errorf("VM disk %s is not bootable: %w", path, err) }
	q, err := openQCOW2(f)
	if err != nil {
		return fail(err)
	}
	off, _, err := findESP(q)
	if err != nil {
		return fail(err)
	}
	fs, err := openFAT(q, off)
	if err != nil {
		return fail(err)
	}
	e, err := fs.lookup(loader)
	if err != nil {
		return fail(fmt.Errorf("%v on the EFI system partition: the firmware finds no boot loader (%s)", err, loader))
	}
	if e.dir || e.size < 2 {
		return fail(fmt.Errorf("%s on the EFI system partition is empty or a folder", loader))
	}
	head, err := fs.readChain(e.cluster, 2)
	if err != nil {
		return fail(err)
	}
	if string(head) != "MZ" {
		return fail(fmt.Errorf("%s is not an EFI executable (no MZ header)", loader))
	}
	return nil
}
