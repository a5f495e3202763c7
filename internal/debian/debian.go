// Package debian reads what Debian tools write: dpkg's status database,
// an archive's Packages index and sources.list lines, and compares
// package versions the way dpkg does. No I/O but what the caller hands in,
// except Archive, which fetches Packages indexes over HTTP.
package debian

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
)

// Packages maps a package name to its version.
type Packages map[string]string

// ParseControl reads deb822 stanzas (dpkg's status file, a Packages
// index) and calls fn with each stanza's fields (only the first line of
// multi-line fields).
func ParseControl(r io.Reader, fn func(fields map[string]string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	fields := map[string]string{}
	flush := func() {
		if len(fields) > 0 {
			fn(fields)
			fields = map[string]string{}
		}
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			// continuation of a multi-line field
		default:
			k, v, ok := strings.Cut(line, ":")
			if ok {
				fields[k] = strings.TrimSpace(v)
			}
		}
	}
	flush()
	return sc.Err()
}

// ParseStatus returns the installed packages of a dpkg status file
// (var/lib/dpkg/status), as `dpkg-query -W` lists them.
func ParseStatus(r io.Reader) (Packages, error) {
	out := Packages{}
	err := ParseControl(r, func(f map[string]string) {
		if strings.HasSuffix(f["Status"], " installed") && f["Package"] != "" {
			out[f["Package"]] = f["Version"]
		}
	})
	if err != nil {
		return nil, fmt.Errorf("dpkg status: %w", err)
	}
	return out, nil
}

// Format writes the list as `dpkg-query -W` does: "name\tversion" lines,
// sorted by name.
func (p Packages) Format() string {
	names := make([]string, 0, len(p))
	for n := range p {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s\t%s\n", n, p[n])
	}
	return b.String()
}

// ParseList reads what Format wrote.
func ParseList(s string) (Packages, error) {
	out := Packages{}
	for i, line := range strings.Split(s, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, version, ok := strings.Cut(line, "\t")
		if !ok || name == "" || version == "" {
			return nil, fmt.Errorf("package list line %d: %q is not NAME<TAB>VERSION", i+1, line)
		}
		out[name] = version
	}
	return out, nil
}

// Upgrade is a package the archive has a newer version of.
type Upgrade struct {
	Package   string `json:"package"`
	Installed string `json:"installed"`
	Available string `json:"available"`
}

func (u Upgrade) String() string {
	return fmt.Sprintf("%s %s → %s", u.Package, u.Installed, u.Available)
}

// Upgrades lists the installed packages for which available (the newest
// version of each package across the archive's suites) is newer, sorted
// by name.
func Upgrades(installed, available Packages) []Upgrade {
	var out []Upgrade
	for name, v := range installed {
		if a, ok := available[name]; ok && CompareVersions(a, v) > 0 {
			out = append(out, Upgrade{Package: name, Installed: v, Available: a})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Package < out[j].Package })
	return out
}

// Changes lists the differences between two package lists: "name
// old → new", "name added", "name removed", sorted.
func Changes(before, after Packages) []string {
	var out []string
	for n, v := range after {
		switch old, ok := before[n]; {
		case !ok:
			out = append(out, fmt.Sprintf("%s %s added", n, v))
		case old != v:
			out = append(out, fmt.Sprintf("%s %s → %s", n, old, v))
		}
	}
	for n := range before {
		if _, ok := after[n]; !ok {
			out = append(out, n+" removed")
		}
	}
	sort.Strings(out)
	return out
}

// PackageURL is the package URL (purl, pkg:deb) of a Debian package of
// distro ("os/release", e.g. "debian/trixie"; the release may be empty),
// its architecture left out when arch is empty:
// pkg:deb/debian/libstdc++6@14.2.0-19?arch=amd64&distro=debian-trixie.
func PackageURL(distro, name, version, arch string) string {
	osName, release, _ := strings.Cut(distro, "/")
	q := url.Values{}
	if arch != "" {
		q.Set("arch", arch)
	}
	if release != "" {
		q.Set("distro", osName+"-"+release)
	}
	purl := "pkg:deb/" + osName + "/" + url.PathEscape(name) + "@" + url.PathEscape(version)
	if len(q) > 0 {
		purl += "?" + q.Encode()
	}
	return purl
}
