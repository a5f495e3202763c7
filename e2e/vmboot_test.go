package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/tooltest"
	"github.com/incus-appliance/registry/internal/vmdisk"
)

// OVMF firmware from Debian's ovmf package (no Secure Boot: the disk's
// systemd-boot is not signed; its product says requirements.secureboot
// = false).
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// The nginx appliance as a VM: `publish build nginx --vm` makes a
// bootable disk beside the container image, `publish` puts both in one
// version (verify checks both fingerprints), and the disk boots under
// UEFI in QEMU (TCG software emulation; REGISTRY_VM_ACCEL=kvm for KVM) with
// user-mode networking: the appliance's health check passes through a
// forwarded port. Run by make test-vm (REGISTRY_VM=1).
func TestVMBootsAndServes(t *testing.T) {
	requireAsked(t, "REGISTRY_VM", "", "set REGISTRY_VM=1 (make test-vm) to build and boot the VM image", "the VM test needs root (distrobuilder)")
	requireTool(t, "distrobuilder")
	qemu := requireTool(t, "qemu-system-x86_64")
	for _, tool := range vmdisk.Tools {
		requireTool(t, tool)
	}
	for _, f := range []string{ovmfCode, ovmfVars} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s: %v (apt-get install ovmf)", f, err)
		}
	}
	root := filepath.Join(repoRoot(t), "appliances")
	a, err := appliance.Load(root, "nginx")
	if err != nil {
		t.Fatal(err)
	}
	// The disk is built beside a copy of the shared container build, in a
	// folder kept across runs (a warm run builds no disk).
	buildDir, reg := keptBuild(t, "vm", "nginx"), filepath.Join(t.TempDir(), "registry")
	buildIn(t, root, buildDir, "nginx", []string{"default"}, "--vm")
	built := builder.Target{Root: buildDir, Name: "nginx", Arch: "amd64"}
	disk, meta := built.Disk(), built.Metadata()
	if err := vmdisk.CheckBootable(disk, "amd64"); err != nil {
		t.Fatal(err)
	}
	out := mustPublish(t, "nginx", "--bucket", reg, "--build-dir", buildDir, "--appliances", root, "--json")
	if fp := fingerprintOf(t, meta, disk); !strings.Contains(out, "disk.qcow2") || !strings.Contains(mustPublish(t, "list", "--bucket", reg, "--json"), fp) {
		t.Fatalf("publish did not list the VM image %s: %s", fp, out)
	}
	mustPublish(t, "verify", "--bucket", reg)

	// Boot a throw-away overlay of the disk.
	dir := t.TempDir()
	overlay, vars, console := filepath.Join(dir, "boot.qcow2"), filepath.Join(dir, "vars.fd"), filepath.Join(dir, "console.log")
	tooltest.Run(t, "qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b", disk, overlay)
	if b, err := os.ReadFile(ovmfVars); err != nil || os.WriteFile(vars, b, 0o644) != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, qemu,
		"-machine", "q35", "-accel", vmAccel(), "-cpu", "max", "-m", "1024", "-smp", "2",
		"-drive", "if=pflash,format=raw,readonly=on,file="+ovmfCode, "-drive", "if=pflash,format=raw,file="+vars,
		"-drive", "if=virtio,format=qcow2,file="+overlay,
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:%d", port, a.Health.HTTP.Port), "-device", "virtio-net-pci,netdev=n0",
		"-display", "none", "-serial", "file:"+console, "-monitor", "none", "-no-reboot")
	qlog, _ := os.Create(filepath.Join(dir, "qemu.log"))
	cmd.Stdout, cmd.Stderr = qlog, qlog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cancel(); <-exited })

	took := stopwatch()
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, a.Health.HTTP.Path)
	var last string
	booted := eventually(15*time.Minute, 2*time.Second, func() bool {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("qemu exited: %v\n%s\nconsole:\n%s", err, readTail(filepath.Join(dir, "qemu.log"), 2000), readTail(console, 4000))
		default:
		}
		var ok bool
		ok, last = probe(url, a.Health.HTTP)
		return ok
	})
	if !booted {
		t.Fatalf("the VM did not pass the health check in 15 min: %s\nconsole:\n%s", last, readTail(console, 4000))
	}
	t.Logf("VM booted (%s): GET %s → %s after %s", vmAccel(), url, last, took())
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func readTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// vmAccel is the QEMU accelerator: TCG (software emulation) unless
// REGISTRY_VM_ACCEL=kvm. /dev/kvm exists on the machines this was written
// on but KVM cannot run a guest there (nested: "failed to set MSR 0x10a"
// with -cpu max or host, "KVM internal error. Suberror: 1" with qemu64),
// and QEMU does not fall back to TCG when the failure comes after KVM
// initialised.
func vmAccel() string {
	if a := os.Getenv("REGISTRY_VM_ACCEL"); a != "" {
		return a
	}
	return "tcg"
}
