package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/incus-appliance/registry/internal/image"
)

// release and variant of every sample image.
const release, variant = "1.0", "default"

// write writes c.out/incus.tar.xz and c.out/rootfs.squashfs.
func write(c config) (meta, root string, err error) {
	meta = filepath.Join(c.out, "incus.tar.xz")
	root = filepath.Join(c.out, "rootfs.squashfs")
	if err := writeRootfs(c, root); err != nil {
		return "", "", err
	}
	var buf bytes.Buffer
	tpl := map[string][]byte{"hostname.tpl": []byte("{{ instance.name }}\n")}
	if err := image.WriteMetadataTarball(&buf, metadataYAML(c), tpl); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(meta, buf.Bytes(), 0o644); err != nil {
		return "", "", err
	}
	return meta, root, nil
}

// metadataYAML returns the sample's metadata.yaml, shaped like
// distrobuilder's.
func metadataYAML(c config) []byte {
	type props struct {
		Architecture string `yaml:"architecture"`
		Description  string `yaml:"description"`
		Name         string `yaml:"name"`
		OS           string `yaml:"os"`
		Release      string `yaml:"release"`
		Serial       string `yaml:"serial"`
		Variant      string `yaml:"variant"`
	}
	type tpl struct {
		When     []string `yaml:"when,flow"`
		Template string   `yaml:"template"`
	}
	md := struct {
		Architecture string         `yaml:"architecture"`
		CreationDate int64          `yaml:"creation_date"`
		ExpiryDate   int64          `yaml:"expiry_date"`
		Properties   props          `yaml:"properties"`
		Templates    map[string]tpl `yaml:"templates"`
	}{
		Architecture: c.arch,
		CreationDate: c.created.Unix(),
		ExpiryDate:   c.created.Add(30 * 24 * time.Hour).Unix(),
		Properties: props{
			Architecture: c.arch, Description: c.description, OS: c.name, Release: release, Variant: variant,
			Name:   fmt.Sprintf("%s-%s-%s-%s", c.name, release, c.arch, variant),
			Serial: c.created.Format("20060102_1504"),
		},
		Templates: map[string]tpl{"/etc/hostname": {When: []string{"create", "copy"}, Template: "hostname.tpl"}},
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(md); err != nil {
		panic(err) // cannot happen: plain strings and integers
	}
	return out.Bytes()
}

// writeRootfs builds the sample tree in a temporary directory and packs it
// into root with mksquashfs.
func writeRootfs(c config, root string) error {
	src, err := os.MkdirTemp("", "sampleimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	if err := os.Chmod(src, 0o755); err != nil { // becomes the image's /
		return err
	}
	files := map[string]string{
		"etc/os-release": fmt.Sprintf("NAME=%q\nID=%s\nVERSION_ID=%q\nPRETTY_NAME=%q\n",
			c.name, c.name, release, c.name+" "+release+" (sample)"),
		"etc/hostname": c.name + "\n",
		"README": fmt.Sprintf("This is %s, a sample image written by tools/sampleimage of\n"+
			"github.com/incus-appliance/registry to try the registry out.\n"+
			"It is not a real operating system: it has no init and does not boot.\n", c.name),
	}
	for name, body := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	// -all-root: the tree belongs to whoever runs this, the image to root.
	// The times make the same -created give the same bytes.
	t := strconv.FormatInt(c.created.Unix(), 10)
	cmd := exec.Command("mksquashfs", src, root, "-noappend", "-comp", "gzip", "-quiet",
		"-all-root", "-all-time", t, "-mkfs-time", t)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mksquashfs: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
