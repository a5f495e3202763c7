// Command sampleimage writes a tiny sample Incus split image for trying
// the registry out:
//
//	go run ./tools/sampleimage -out DIR [-name hello] [-arch amd64]
//	    [-created 2026-11-25T12:00:00Z] [-description TEXT]
//
// It writes DIR/incus.tar.xz (metadata) and DIR/rootfs.squashfs, a real
// squashfs made with mksquashfs from a three-file tree (/etc/os-release,
// /etc/hostname, /README). The image imports into Incus but has no init,
// so instances made from it do not start. Each run is a new version: the
// creation date defaults to now. The output depends only on the flags, so
// runs with the same -created write the same bytes (same fingerprint).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"time"

	"github.com/incus-appliance/registry/internal/osarch"

	"github.com/incus-appliance/registry/internal/image"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "sampleimage: "+err.Error())
			os.Exit(1)
		}
	}
}

// config is the parsed command line.
type config struct {
	out, name, arch, description string
	created                      time.Time
}

// validName is what -name accepts: it becomes properties.os and the hostname.
var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// parse parses the command line.
func parse(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("sampleimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	var created string
	fs.StringVar(&c.out, "out", "", "directory to write incus.tar.xz and rootfs.squashfs into (required; created if missing)")
	fs.StringVar(&c.name, "name", "hello", "image name: properties.os and the hostname")
	fs.StringVar(&c.arch, "arch", "amd64", "architecture recorded in metadata.yaml")
	fs.StringVar(&created, "created", "", "creation date, RFC 3339, e.g. 2026-11-25T12:00:00Z (default now)")
	fs.StringVar(&c.description, "description", "", `properties.description (default "NAME sample image (not a real OS)")`)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q; see -h", fs.Arg(0))
	case c.out == "":
		return c, errors.New("-out DIR is required")
	case !validName.MatchString(c.name):
		return c, fmt.Errorf("-name %q: use lowercase letters, digits and '-' (at most 63)", c.name)
	}
	arch, err := osarch.Normalize(c.arch)
	if err != nil {
		return c, fmt.Errorf("-arch: %w", err)
	}
	c.arch = arch
	c.created = time.Now()
	if created != "" {
		if c.created, err = time.Parse(time.RFC3339, created); err != nil {
			return c, fmt.Errorf("-created %q: not an RFC 3339 time like 2026-11-25T12:00:00Z", created)
		}
	}
	c.created = c.created.UTC().Truncate(time.Second)
	if c.description == "" {
		c.description = c.name + " sample image (not a real OS)"
	}
	return c, nil
}

// run is main without the exit.
func run(args []string, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		return errors.New("mksquashfs not found: install squashfs-tools (apt-get install squashfs-tools)")
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	meta, root, err := write(c)
	if err != nil {
		return err
	}
	img, err := image.Inspect(context.Background(), meta, root, image.Options{Arch: c.arch})
	if err != nil {
		return fmt.Errorf("the sample does not pass inspection: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n%s %s %s, created %s, fingerprint %s\n",
		meta, root, img.Metadata.OS, img.Metadata.Release, img.Metadata.Arch,
		img.Metadata.CreationDate.Format(time.RFC3339), img.Fingerprint)
	return nil
}
