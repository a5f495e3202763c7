// Package cloudinit checks cloud-init user-data before it reaches an
// instance. Incus 6.0 refuses a cloud-config that is not YAML when it
// creates the instance, but lets through what cloud-init then ignores
// (text without a #cloud-config or #! header, a cloud-config that is not
// a mapping): the instance comes up without the configuration. Checking
// first turns all of it into one clear error, before any launch.
package cloudinit

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/incus-appliance/registry/internal/yamlnode"
)

// cloudConfigHeader starts a cloud-config document.
const cloudConfigHeader = "#cloud-config"

// CheckUserData checks user-data as cloud-init reads it: a #cloud-config
// document must be a YAML mapping; a script (#!) or a MIME multi-part
// document is passed through unchecked, and anything else is refused
// (cloud-init would ignore it). The error is one line.
func CheckUserData(data []byte) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return errors.New("user-data is empty: start it with #cloud-config")
	case bytes.HasPrefix(trimmed, []byte("#!")), bytes.HasPrefix(trimmed, []byte("Content-Type: multipart/")):
		return nil
	case !bytes.HasPrefix(trimmed, []byte(cloudConfigHeader)):
		first, _, _ := strings.Cut(string(trimmed), "\n")
		return fmt.Errorf("user-data starts with %q: cloud-init ignores it; start a cloud-config with #cloud-config (or a script with #!)", truncate(first, 40))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(trimmed, &doc); err != nil {
		return fmt.Errorf("user-data is not valid YAML (%s): cloud-init would skip it and the instance would start unconfigured", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil // a header alone: nothing to do
	}
	if doc.Content[0].Kind != yaml.MappingNode {
		return fmt.Errorf("user-data line %d: a cloud-config is a mapping of modules (write_files:, runcmd:, ...), not %s", doc.Content[0].Line, yamlnode.Kind(doc.Content[0]))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
