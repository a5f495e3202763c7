package edgeproxy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/relations"
)

// The catalog page: plain HTML (no script, no external resource), readable
// in a text browser, every catalog string escaped by html/template. A
// Content-Security-Policy forbids scripts outright, as a second guard.

// pageAppliance is one appliance as the page shows it.
type pageAppliance struct {
	Name        string
	Description string
	Archs       []string
	Aliases     []string
	Custom      [][2]string
	// Provides and Requires are the newest version's relations.
	Provides []relations.Provide
	Requires []relations.Require
	// relationsFrom is the version key they were read from.
	relationsFrom string
	Latest        string
	Versions      []pageVersion
}

type pageVersion struct {
	Key, ApplianceVersion, Arch, Fingerprint, Description string
	Size                                                  string
	Aliases                                               []string
	Profiles                                              []pageLink
	Latest                                                bool
}

// pageLink is a file a version ships, by name; Path is empty when it is
// no file of this registry (then it is not linked).
type pageLink struct{ Name, Path string }

type pageData struct {
	Remote, URL string // remote name and the URL to add
	Prefix      string // "" or "/<token>": where the page's links go
	Appliances  []pageAppliance
	One         *pageAppliance
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{if .One}}{{.One.Name}} · {{end}}Incus appliances</title>
<style>body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em}pre{background:#eee;padding:.5em;overflow-x:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}code{word-break:break-all}</style>
</head><body>
{{if .One}}{{with .One}}
<p><a href="{{$.Prefix}}/">All appliances</a></p>
<h1 id="appliance">{{.Name}}</h1>
<p class="description">{{.Description}}</p>
<h2>Use it</h2>
<pre>incus remote add {{$.Remote}} {{$.URL}} --protocol simplestreams
incus launch {{$.Remote}}:{{.Name}} {{.Name}}-1</pre>
{{if or .Provides .Requires}}<h2>Relations</h2>
{{if .Provides}}<p>Provides {{range .Provides}}<code class="provides">{{.Interface}}</code>{{if .Port}} (port {{.Port}}){{end}} {{end}}to the appliances that require it:</p>
<pre>{{range .Provides}}incus exec {{$.One.Name}}-1 -- {{.Hook}} CONSUMER | incus exec CONSUMER -- /usr/lib/appliance/requires/RELATION
{{end}}</pre>{{end}}
{{if .Requires}}<p>Requires, each wired from an instance of an appliance providing the interface:</p>
<table><tr><th>Relation</th><th>Interface and versions</th><th>Wire it</th></tr>
{{range .Requires}}<tr class="requires"><td>{{.Name}}{{if .Multiple}} (any number){{end}}</td><td>{{.Wants}}</td><td><code>incus exec PROVIDER -- /usr/lib/appliance/provides/{{.Interface}} {{$.One.Name}}-1 | incus exec {{$.One.Name}}-1 -- {{.Hook}}</code></td></tr>
{{end}}</table>{{end}}{{end}}
{{if .Custom}}<h2>Metadata</h2><table>{{range .Custom}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>{{end}}</table>{{end}}
<h2>Versions (newest first)</h2>
<table><tr><th>Version</th><th>Appliance version</th><th>Architecture</th><th>Description</th><th>Size</th><th>Aliases</th><th>Profiles</th><th>Fingerprint</th></tr>
{{range .Versions}}<tr class="version"><td>{{.Key}}{{if .Latest}} (latest){{end}}</td><td>{{.ApplianceVersion}}</td><td>{{.Arch}}</td><td>{{.Description}}</td><td>{{.Size}}</td><td>{{range .Aliases}}{{.}} {{end}}</td><td>{{range .Profiles}}{{if .Path}}<a href="{{$.Prefix}}/{{.Path}}">{{.Name}}</a>{{else}}{{.Name}}{{end}} {{end}}</td><td><code>{{.Fingerprint}}</code></td></tr>
{{end}}</table>
<p>A given version: <code>incus launch {{$.Remote}}:FINGERPRINT NAME</code></p>
{{end}}{{else}}
<h1>Incus appliances</h1>
<p>Add this registry to Incus, then launch any appliance below:</p>
<pre>incus remote add {{.Remote}} {{.URL}} --protocol simplestreams</pre>
{{if not .Appliances}}<p>No appliance is published yet.</p>{{end}}
{{range .Appliances}}<div class="appliance" id="{{.Name}}">
<h2><a href="{{$.Prefix}}/appliance/{{.Name}}">{{.Name}}</a></h2>
<p class="description">{{.Description}}</p>
<p>Latest {{.Latest}} · architectures: {{range .Archs}}{{.}} {{end}}· aliases: {{range .Aliases}}{{.}} {{end}}</p>
{{if .Requires}}<p>Requires {{range .Requires}}{{.Name}} ({{.Wants}}) {{end}}</p>{{end}}
<pre>incus launch {{$.Remote}}:{{.Name}} {{.Name}}-1</pre>
</div>
{{end}}{{end}}
</body></html>
`))

// servePage answers / (every appliance) and /appliance/NAME.
func (h *handler) servePage(w http.ResponseWriter, r *http.Request, prefix, raw string) {
	apps, err := h.appliances(r)
	if err != nil {
		h.originError(w, "catalog page", err)
		return
	}
	// Never the request's Host: the page is cached (public) and a forged
	// name would reach everyone.
	data := pageData{Remote: h.remoteName, URL: h.publicURL + prefix, Prefix: prefix, Appliances: apps}
	if name, ok := strings.CutPrefix(raw, "/appliance/"); ok {
		for i := range apps {
			if apps[i].Name == name {
				data.One = &apps[i]
			}
		}
		if data.One == nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
	}
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, data); err != nil {
		h.originError(w, "catalog page", err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(h.catalogMaxAge.Seconds())))
	hd.Set("Content-Length", fmt.Sprint(b.Len()))
	if r.Method != http.MethodHead {
		w.Write(b.Bytes())
	}
}

// appliances reads the catalog files index.json names and groups their
// products by appliance (the product key up to ":<arch>").
func (h *handler) appliances(r *http.Request) ([]pageAppliance, error) {
	ix, err := h.cache.get(r.Context(), catalog.IndexPath)
	if err != nil {
		return nil, err
	}
	ix.parse()
	byName := map[string]*pageAppliance{}
	for _, p := range slices.Sorted(maps.Keys(ix.named)) {
		e, err := h.cache.get(r.Context(), p)
		if err != nil {
			return nil, err
		}
		var c catalog.Catalog
		if e.missing || json.Unmarshal(e.data, &c) != nil {
			continue
		}
		for _, pk := range slices.Sorted(maps.Keys(c.Products)) {
			addProduct(byName, pk, c.Products[pk])
		}
	}
	var out []pageAppliance
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		a := byName[name]
		slices.SortStableFunc(a.Versions, func(x, y pageVersion) int {
			return cmp.Or(-strings.Compare(x.Key, y.Key), strings.Compare(x.Arch, y.Arch))
		})
		slices.Sort(a.Archs)
		a.Archs = slices.Compact(a.Archs)
		slices.Sort(a.Aliases)
		a.Aliases = slices.Compact(a.Aliases)
		if len(a.Versions) > 0 {
			a.Latest = a.Versions[0].Key
			a.Description = a.Versions[0].Description
		}
		out = append(out, *a)
	}
	return out, nil
}

func addProduct(byName map[string]*pageAppliance, pk string, p *catalog.Product) {
	if p == nil {
		return
	}
	name, _, _ := strings.Cut(pk, ":")
	a := byName[name]
	if a == nil {
		a = &pageAppliance{Name: name}
		byName[name] = a
	}
	a.Archs = append(a.Archs, p.Arch)
	a.Aliases = append(a.Aliases, p.AliasList()...)
	for _, k := range slices.Sorted(maps.Keys(p.Custom)) {
		if k == relations.Provides || k == relations.Requires {
			continue // the Relations section shows them
		}
		if !slices.Contains(a.Custom, [2]string{k, p.Custom[k]}) {
			a.Custom = append(a.Custom, [2]string{k, p.Custom[k]})
		}
	}
	vks := p.VersionKeys()
	for i, vk := range vks {
		v := p.Versions[vk]
		if v == nil {
			continue
		}
		b := p.ApplianceBuild(vk)
		pv := pageVersion{Key: vk, ApplianceVersion: b.Version, Arch: p.Arch, Description: v.Label, Latest: i == len(vks)-1}
		if pv.Latest {
			pv.Aliases = p.AliasList()
		}
		if pv.Latest && vk >= a.relationsFrom {
			// The appliance's relations are its newest version's.
			a.relationsFrom = vk
			a.Provides, _ = relations.ParseProvides(b.Provides)
			a.Requires, _ = relations.ParseRequires(b.Requires)
		}
		for _, vi := range v.Images() {
			pv.Fingerprint = vi.Fingerprint
			pv.Size = humanSize(vi.Meta.Size + vi.Root.Size)
		}
		for _, ik := range slices.Sorted(maps.Keys(v.Items)) {
			if it := v.Items[ik]; it.FType == catalog.FTypeProfile {
				link := pageLink{Name: strings.TrimPrefix(ik, "profile:"), Path: it.Path}
				if _, c, status := route("/" + it.Path); status != 0 || c != classImage {
					link.Path = "" // not a file of this registry: no link
				}
				pv.Profiles = append(pv.Profiles, link)
			}
		}
		a.Versions = append(a.Versions, pv)
	}
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
