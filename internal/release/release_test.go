package release

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/gate"
	"github.com/incus-appliance/registry/internal/osarch"
	"github.com/incus-appliance/registry/internal/provenance"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/relations"
)

// fakeBuilder builds nothing: each target's build is due (or not) as
// stale says, fails as fail says, and describes an image whose
// fingerprint is the target's label and version.
type fakeBuilder struct {
	version string
	stale   map[string]builder.Staleness // by label; default: never built
	fail    map[string]error             // by label
	same    map[string]bool              // rebuilt with the same package versions
	built   []string
}

func (b *fakeBuilder) Stale(ctx context.Context, a *appliance.Appliance, t builder.Target) (*builder.Staleness, error) {
	if st, ok := b.stale[t.Label()]; ok {
		return &st, nil
	}
	return &builder.Staleness{Rebuild: true, Reasons: []string{"never built"}}, nil
}

func (b *fakeBuilder) Build(ctx context.Context, a *appliance.Appliance, t builder.Target, force bool, progress func(string)) (*builder.Result, error) {
	b.built = append(b.built, t.Label())
	progress("Creating squashfs")
	if err := b.fail[t.Label()]; err != nil {
		return nil, err
	}
	return &builder.Result{Unchanged: b.same[t.Label()]}, ctx.Err()
}

func (b *fakeBuilder) Request(ctx context.Context, a *appliance.Appliance, t builder.Target) (registry.PublishRequest, error) {
	return registry.PublishRequest{Image: catalog.Image{Name: a.Name, Arch: t.Arch, Variant: t.Variant, Fingerprint: digest.Of([]byte(t.Label() + "@" + b.version))},
		Provenance: &provenance.Inputs{Appliance: a.Name, Arch: t.Arch}}, nil
}

// fakeGate fails the check named in fail of a target, passes the others
// and counts what it launched.
type fakeGate struct {
	fail     map[string]string // label → failing check
	err      error             // the gate cannot run
	launched []string
	// providers are the providers each gate launched, by label.
	providers map[string][]gate.Provider
}

func (g *fakeGate) Check(ctx context.Context, a *appliance.Appliance, t builder.Target, req registry.PublishRequest, providers []gate.Provider, progress func(string)) (*gate.Report, error) {
	if g.err != nil {
		return nil, g.err
	}
	g.launched = append(g.launched, t.Label())
	if g.providers == nil {
		g.providers = map[string][]gate.Provider{}
	}
	g.providers[t.Label()] = providers
	rep := &gate.Report{Appliance: a.Name, Arch: t.Arch, Image: req.Image.Fingerprint, Passed: true}
	for _, name := range []string{gate.CheckLaunch, gate.CheckHealth, gate.CheckNoLogin} {
		failed := g.fail[t.Label()] == name
		rep.Checks = append(rep.Checks, gate.Check{Name: name, Passed: !failed, Detail: "detail of " + name})
		rep.Passed = rep.Passed && !failed
	}
	return rep, nil
}

// fakeRegistry keeps the fingerprints published (and those it had).
type fakeRegistry struct {
	has       map[string]bool
	published []string // labels, as NAME/VARIANT:ARCH
	reqs      []registry.PublishRequest
	pruned    int
	// images are the published images taking part in relations;
	// fetched the fingerprints fetched.
	images  []relations.Image
	fetched []string
	// refuse, when set, is every publish's error (dry runs too).
	refuse error
}

func (r *fakeRegistry) ApplianceImages(ctx context.Context) ([]relations.Image, error) {
	return r.images, nil
}

func (r *fakeRegistry) FetchImage(ctx context.Context, fp, dir string) (string, string, error) {
	r.fetched = append(r.fetched, fp)
	return dir + "/meta", dir + "/root", nil
}

func (r *fakeRegistry) Publish(ctx context.Context, req registry.PublishRequest) (*registry.PublishResult, error) {
	if r.refuse != nil {
		return nil, r.refuse
	}
	fp := req.Image.Fingerprint
	res := &registry.PublishResult{Product: req.Image.Name + ":" + req.Image.Arch, Version: "20260101_0000", Fingerprint: fp, Changed: !r.has[fp], DryRun: req.DryRun}
	if !req.DryRun && res.Changed {
		r.has[fp] = true
		r.published = append(r.published, req.Image.Name+"/"+req.Image.Variant+":"+req.Image.Arch)
		r.reqs = append(r.reqs, req)
	}
	return res, nil
}

func (r *fakeRegistry) Prune(ctx context.Context, opts registry.PruneOptions) (*registry.PruneResult, error) {
	r.pruned++
	return &registry.PruneResult{}, nil
}

// fixture is a release of web (amd64 and arm64, default and cloud
// variants) and db (amd64) with fakes.
type fixture struct {
	b     *fakeBuilder
	g     *fakeGate
	r     *fakeRegistry
	p     *Pipeline
	apps  []*appliance.Appliance
	notes []string
	warns []string
}

func newFixture() *fixture {
	f := &fixture{
		b: &fakeBuilder{version: "1", stale: map[string]builder.Staleness{}, fail: map[string]error{}, same: map[string]bool{}},
		g: &fakeGate{fail: map[string]string{}},
		r: &fakeRegistry{has: map[string]bool{}},
		apps: []*appliance.Appliance{
			{Name: "web", Architectures: []string{"amd64", "arm64"}, Variants: []string{"default", "cloud"}},
			{Name: "db", Architectures: []string{"amd64"}},
		},
	}
	f.p = &Pipeline{Builder: f.b, Gate: f.g, Registry: f.r, Options: Options{
		BuildDir: "/builds", Keep: 3,
		Note: func(s string) { f.notes = append(f.notes, s) },
		Warn: func(s string) { f.warns = append(f.warns, s) },
	}}
	return f
}

func (f *fixture) run(t *testing.T) *Result {
	t.Helper()
	res, err := f.p.Run(t.Context(), f.apps, []string{"amd64", "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// outcomes lists LABEL=OUTCOME for every item, in order.
func outcomes(res *Result) string {
	var out []string
	for _, it := range res.Items {
		out = append(out, it.Label()+"="+string(it.Outcome))
	}
	return strings.Join(out, " ")
}

func TestEveryTargetIsBuiltGatedAndReleased(t *testing.T) {
	f := newFixture()
	res := f.run(t)
	want := "web/amd64=released web/arm64=released web/cloud/amd64=released web/cloud/arm64=released db/amd64=released"
	if got := outcomes(res); got != want {
		t.Fatalf("outcomes %s\nwant %s", got, want)
	}
	if len(f.r.published) != 5 || len(f.g.launched) != 5 || f.r.pruned != 1 || !res.Changed() || res.Err() != nil {
		t.Errorf("published %v, launched %v, pruned %d, changed %v, err %v", f.r.published, f.g.launched, f.r.pruned, res.Changed(), res.Err())
	}
	if it := res.Items[2]; it.Variant != "cloud" || it.Build != "built" || !it.Gate.Passed || it.Published == nil || it.Reasons[0] != "never built" {
		t.Errorf("cloud item %+v", it)
	}
	if res.Items[0].Variant != "" {
		t.Errorf("the default variant is named %q in the result", res.Items[0].Variant)
	}
	for _, want := range []string{"build web/cloud/arm64: Creating squashfs", "gate db/amd64: launching ", "gate web/amd64: pass health           detail of health"} {
		if !slices.ContainsFunc(f.notes, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("no note %q in %q", want, f.notes)
		}
	}
}

// A failed gate on one architecture publishes no architecture and no
// variant of that appliance; the other appliances still go out.
func TestFailedGatePublishesNothingOfItsAppliance(t *testing.T) {
	f := newFixture()
	f.g.fail["web/arm64"] = gate.CheckHealth
	res := f.run(t)
	want := "web/amd64=not-released web/arm64=gate-failed web/cloud/amd64=not-released web/cloud/arm64=not-released db/amd64=released"
	if got := outcomes(res); got != want {
		t.Fatalf("outcomes %s\nwant %s", got, want)
	}
	if strings.Join(f.r.published, " ") != "db/default:amd64" || f.r.pruned != 1 {
		t.Errorf("published %v (pruned %d), want only db", f.r.published, f.r.pruned)
	}
	if r := res.Items[0].Reasons; r[len(r)-1] != "another architecture failed the gate" {
		t.Errorf("reasons %v", r)
	}
	err := res.Err()
	if err == nil || err.Error() != "web/arm64 failed the gate: health: detail of health (nothing of it published; report: BUILD-DIR/NAME/ARCH/gate.json)" {
		t.Errorf("Err() = %v", err)
	}
}

// A build that fails holds back its appliance like a failed gate, and
// the others still go out; a cancelled release stops.
func TestBuildFailure(t *testing.T) {
	f := newFixture()
	f.b.fail["web/cloud/amd64"] = errors.New("build web/cloud/amd64: distrobuilder failed during step \"Managing packages\"")
	res := f.run(t)
	want := "web/amd64=not-released web/arm64=not-released web/cloud/amd64=build-failed web/cloud/arm64=not-released db/amd64=released"
	if got := outcomes(res); got != want {
		t.Fatalf("outcomes %s\nwant %s", got, want)
	}
	if strings.Join(f.r.published, " ") != "db/default:amd64" || slices.Contains(f.g.launched, "web/cloud/amd64") {
		t.Errorf("published %v, launched %v", f.r.published, f.g.launched)
	}
	if r := res.Items[0].Reasons; r[len(r)-1] != "another architecture failed to build" {
		t.Errorf("reasons %v", r)
	}
	if err := res.Err(); err == nil || !strings.HasPrefix(err.Error(), `build web/cloud/amd64: distrobuilder failed during step "Managing packages" (nothing of it published)`) {
		t.Errorf("Err() = %v", err)
	}

	f = newFixture()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f.b.fail["web/amd64"] = context.Canceled
	if _, err := f.p.Run(ctx, f.apps, []string{"amd64"}); !errors.Is(err, context.Canceled) || len(f.r.published) != 0 {
		t.Errorf("cancelled release: %v, published %v", err, f.r.published)
	}
}

// An appliance whose build made the image the registry has publishes
// nothing and launches nothing; nothing to prune.
func TestUnchangedAppliancePublishesNothing(t *testing.T) {
	f := newFixture()
	f.run(t)
	f.r.published, f.g.launched, f.r.pruned = nil, nil, 0
	for _, label := range []string{"web/amd64", "web/arm64", "web/cloud/amd64", "web/cloud/arm64"} {
		f.b.stale[label] = builder.Staleness{}
	}
	f.b.stale["db/amd64"] = builder.Staleness{Rebuild: true, Force: true, Reasons: []string{"1 package update(s): libc6"}}
	f.b.same["db/amd64"] = true
	res := f.run(t)
	if got := outcomes(res); got != "web/amd64=unchanged web/arm64=unchanged web/cloud/amd64=unchanged web/cloud/arm64=unchanged db/amd64=unchanged" {
		t.Fatalf("outcomes %s", got)
	}
	if len(f.r.published) != 0 || len(f.g.launched) != 0 || f.r.pruned != 0 || res.Changed() || res.Err() != nil {
		t.Errorf("published %v, launched %v, pruned %d, changed %v, err %v", f.r.published, f.g.launched, f.r.pruned, res.Changed(), res.Err())
	}
	web, db := res.Items[0], res.Items[4]
	if web.Build != "up to date" || !strings.HasPrefix(web.Reasons[0], "nothing new: inputs and installed package versions unchanged, ") || len(web.Reasons[0]) != len("nothing new: inputs and installed package versions unchanged, ")+len(" already published")+12 {
		t.Errorf("web %+v", web)
	}
	if db.Build != "rebuilt, same package versions: kept the previous build" || db.Reasons[0] != "1 package update(s): libc6" {
		t.Errorf("db %+v", db)
	}

	// A rebuild (changed inputs) that made the same image: reproducible.
	f.b.stale["web/amd64"] = builder.Staleness{Rebuild: true, Reasons: []string{"inputs changed"}}
	res = f.run(t)
	if r := res.Items[0].Reasons; res.Items[0].Outcome != Unchanged || !strings.HasPrefix(r[1], "nothing new: the rebuild made the same image, ") {
		t.Errorf("reproducible rebuild: %+v", res.Items[0])
	}
}

// --skip-gate publishes without launching, and warns for each build.
func TestSkipGate(t *testing.T) {
	f := newFixture()
	f.p.SkipGate = true
	f.g.fail["web/arm64"] = gate.CheckHealth // never asked
	res := f.run(t)
	if got := outcomes(res); strings.Count(got, "=released") != 5 || len(f.g.launched) != 0 || len(f.r.published) != 5 {
		t.Fatalf("outcomes %s, launched %v", got, f.g.launched)
	}
	if !res.Items[1].GateSkipped || res.Items[1].Gate != nil || len(f.warns) != 5 || !strings.HasPrefix(f.warns[1], "web/arm64: gate skipped (--skip-gate): ") || !strings.HasSuffix(f.warns[1], " goes out untested") {
		t.Errorf("item %+v, warnings %q", res.Items[1], f.warns)
	}
}

// A dry run says what is due and why; it builds, launches and publishes
// nothing.
func TestDryRun(t *testing.T) {
	f := newFixture()
	f.p.DryRun = true
	f.b.stale["db/amd64"] = builder.Staleness{}
	f.b.stale["web/arm64"] = builder.Staleness{Rebuild: true, Reasons: []string{"inputs changed"}}
	res := f.run(t)
	want := "web/amd64=would-rebuild web/arm64=would-rebuild web/cloud/amd64=would-rebuild web/cloud/arm64=would-rebuild db/amd64=up-to-date"
	if got := outcomes(res); got != want || !res.DryRun {
		t.Fatalf("outcomes %s\nwant %s", got, want)
	}
	if len(f.b.built)+len(f.g.launched)+len(f.r.published)+f.r.pruned != 0 || res.Items[1].Reasons[0] != "inputs changed" {
		t.Errorf("built %v, launched %v, published %v, pruned %d; reasons %v", f.b.built, f.g.launched, f.r.published, f.r.pruned, res.Items[1].Reasons)
	}
}

// A gate that cannot run stops the release: nothing of the appliance
// it was gating is published, and no appliance after it is.
func TestGateThatCannotRunStops(t *testing.T) {
	f := newFixture()
	f.g.err = gate.ErrNoDaemon
	if _, err := f.p.Run(t.Context(), f.apps, []string{"amd64"}); !errors.Is(err, gate.ErrNoDaemon) || len(f.r.published) != 0 {
		t.Errorf("err %v, published %v", err, f.r.published)
	}
}

// The Incus gate launches only builds of this host's architecture.
func TestIncusGateRefusesAForeignArchitecture(t *testing.T) {
	foreign := "arm64"
	if osarch.Host() == foreign {
		foreign = "amd64"
	}
	_, err := Incus{}.Check(t.Context(), &appliance.Appliance{Name: "web"}, builder.Target{Name: "web", Arch: foreign}, registry.PublishRequest{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot launch a "+foreign+" build") || !strings.Contains(err.Error(), "--skip-gate") {
		t.Errorf("err %v", err)
	}
}

// A released image's provenance carries the report of the gate it passed
// (as gate.json holds it); one released with --skip-gate carries none.
func TestReleasedProvenanceCarriesTheGateReport(t *testing.T) {
	f := newFixture()
	f.run(t)
	if len(f.r.reqs) != 5 {
		t.Fatalf("%d published", len(f.r.reqs))
	}
	for _, req := range f.r.reqs {
		rep, err := (&gate.Report{}).Marshal()
		if err != nil || req.Provenance == nil || !strings.Contains(string(req.Provenance.GateReport), `"image": "`+req.Image.Fingerprint+`"`) || len(req.Provenance.GateReport) <= len(rep) {
			t.Errorf("%s: gate report %s", req.Image.Name, req.Provenance.GateReport)
		}
	}
	f = newFixture()
	f.p.SkipGate = true
	f.run(t)
	for _, req := range f.r.reqs {
		if req.Provenance == nil || req.Provenance.GateReport != nil {
			t.Errorf("%s released without a gate: provenance %+v", req.Image.Name, req.Provenance)
		}
	}
}
