package debian

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/ulikunitz/xz"
)

// Source is one `deb URI SUITE COMPONENT...` line of a sources.list.
type Source struct {
	URI        string
	Suite      string
	Components []string
}

// ParseSources reads the deb lines of a sources.list (deb-src, comments
// and options in brackets are skipped).
func ParseSources(s string) ([]Source, error) {
	var out []Source
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.Contains(line, "[") {
			open, close := strings.Index(line, "["), strings.Index(line, "]")
			if close < open {
				return nil, fmt.Errorf("sources.list line %d: unbalanced [options]", i+1)
			}
			line = line[:open] + line[close+1:]
		}
		f := strings.Fields(line)
		if f[0] == "deb-src" {
			continue
		}
		if f[0] != "deb" || len(f) < 4 {
			return nil, fmt.Errorf("sources.list line %d: %q is not `deb URI SUITE COMPONENT...`", i+1, line)
		}
		out = append(out, Source{URI: strings.TrimSuffix(f[1], "/"), Suite: f[2], Components: f[3:]})
	}
	return out, nil
}

// Archive fetches Packages indexes (Packages.xz) and remembers them for
// its lifetime: several appliances on one mirror fetch each index once.
// The indexes are not signature-checked: they only decide whether to
// rebuild; the build itself verifies what it installs.
type Archive struct {
	Client *http.Client

	mu    sync.Mutex
	cache map[string]Packages
}

// Newest returns, for each package, its newest version across the
// sources' indexes for arch (a Debian architecture name).
func (a *Archive) Newest(ctx context.Context, sources []Source, arch string) (Packages, error) {
	out := Packages{}
	for _, s := range sources {
		for _, comp := range s.Components {
			url := fmt.Sprintf("%s/dists/%s/%s/binary-%s/Packages.xz", s.URI, s.Suite, comp, arch)
			idx, err := a.index(ctx, url)
			if err != nil {
				return nil, err
			}
			for n, v := range idx {
				if old, ok := out[n]; !ok || CompareVersions(v, old) > 0 {
					out[n] = v
				}
			}
		}
	}
	return out, nil
}

func (a *Archive) index(ctx context.Context, url string) (Packages, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.cache[url]; ok {
		return p, nil
	}
	client := a.Client
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("package index: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("package index %s: HTTP %s", url, resp.Status)
	}
	p, err := parseIndex(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("package index %s: %w", url, err)
	}
	if a.cache == nil {
		a.cache = map[string]Packages{}
	}
	a.cache[url] = p
	return p, nil
}

// parseIndex reads an xz-compressed Packages index: the newest version of
// each package.
func parseIndex(r io.Reader) (Packages, error) {
	xr, err := xz.NewReader(r)
	if err != nil {
		return nil, err
	}
	out := Packages{}
	err = ParseControl(xr, func(f map[string]string) {
		n, v := f["Package"], f["Version"]
		if n == "" || v == "" {
			return
		}
		if old, ok := out[n]; !ok || CompareVersions(v, old) > 0 {
			out[n] = v
		}
	})
	return out, err
}
