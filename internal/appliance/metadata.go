package appliance

import (
	"maps"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/incus-appliance/registry/internal/relations"
)

// requirementValues are the image requirements Incus knows (image
// property requirements.KEY) and the values each takes.
var requirementValues = map[string][]string{
	"secureboot":  {"true", "false"},
	"privileged":  {"true", "false"},
	"nesting":     {"true", "false"},
	"cdrom_agent": {"true", "false"},
	"cgroup":      {"v1", "v2"},
}

var (
	tagRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,31}$`)
	volumeRe = regexp.MustCompile(`^(/[^/\s]+)+$`)
)

// checkMetadata validates volumes, requirements and tags.
func (a *Appliance) checkMetadata(bad func(field, format string, args ...any)) {
	seen := map[string]bool{}
	for _, v := range a.Volumes {
		switch {
		case !volumeRe.MatchString(v) || path.Clean(v) != v:
			bad("volumes", "%q must be a clean absolute path below /, e.g. /var/lib/postgresql", v)
		case seen[v]:
			bad("volumes", "%s is listed twice", v)
		}
		seen[v] = true
	}
	keys := make([]string, 0, len(a.Requirements))
	for k := range a.Requirements {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		allowed, ok := requirementValues[k]
		if !ok {
			bad("requirements", "unknown key %q: Incus knows %s", k, strings.Join(requirementKeys(), ", "))
		} else if !slices.Contains(allowed, a.Requirements[k]) {
			bad("requirements", "%s: %q must be one of %s", k, a.Requirements[k], strings.Join(allowed, ", "))
		}
	}
	tags := map[string]bool{}
	for _, t := range a.Tags {
		switch {
		case !tagRe.MatchString(t):
			bad("tags", "%q must be a lowercase word (a-z, 0-9, '.', '-'; at most 32)", t)
		case tags[t]:
			bad("tags", "%s is listed twice", t)
		}
		tags[t] = true
	}
	if a.Custom != nil {
		for _, k := range []string{"ports", "volumes", "tags", "service", "sbom", relations.Provides, relations.Requires} {
			if _, ok := a.Custom[k]; ok && (k != "ports" || len(a.Ports) == 0) { // runtime.go reports the other case
				bad("custom", "%s: is set from its own field (custom keeps free-form keys)", k)
			}
		}
	}
}

// Relations are the appliance's provides and requires as the catalog's
// custom metadata and the image's properties carry them
// (relations.FormatProvides, relations.FormatRequires), by key; none
// when it takes part in no relation.
func (a *Appliance) Relations() map[string]string {
	out := map[string]string{}
	if len(a.Provides) > 0 {
		out[relations.Provides] = relations.FormatProvides(a.Provides)
	}
	if len(a.Requires) > 0 {
		out[relations.Requires] = relations.FormatRequires(a.Requires)
	}
	return out
}

func requirementKeys() []string {
	keys := make([]string, 0, len(requirementValues))
	for k := range requirementValues {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// CatalogMetadata is the product custom metadata carried into the
// catalog: custom, ports (catalogCustom), the volumes, tags and service
// as comma-joined strings (SimpleStreams custom values are strings), and
// the relations (Relations).
func (a *Appliance) CatalogMetadata() map[string]string {
	out := map[string]string{}
	for k, v := range a.catalogCustom() {
		out[k] = v
	}
	if len(a.Volumes) > 0 {
		out["volumes"] = strings.Join(a.Volumes, ",")
	}
	if len(a.Tags) > 0 {
		out["tags"] = strings.Join(a.Tags, ",")
	}
	if a.Service != nil {
		out["service"] = a.Service.Unit + "," + a.Service.User
	}
	maps.Copy(out, a.Relations())
	if len(out) == 0 {
		return nil
	}
	return out
}

// ProvidersFirst returns apps with each appliance after those of apps
// providing an interface it requires (relations.Order), otherwise in
// their order: building, publishing or releasing them in that order puts
// every provider out before its consumers, which the registry requires.
func ProvidersFirst(apps []*Appliance) []*Appliance {
	declared := make([]relations.Declared, len(apps))
	for i, a := range apps {
		declared[i] = relations.Declared{Name: a.Name, Provides: a.Provides, Requires: a.Requires}
	}
	out := make([]*Appliance, 0, len(apps))
	for _, i := range relations.Order(declared) {
		out = append(out, apps[i])
	}
	return out
}
