// Command delta measures how small the deltas between successive builds of
// an appliance are, with real distrobuilder builds (xz squashfs) and the
// publish binary, on a copy of the appliance folder:
//
//	(a) a rebuild with unchanged inputs (--force): target a bit-identical
//	    image, the same fingerprint, nothing to publish;
//	(b) one changed file under files/: target delta ≤ 0.2 % of the root;
//	(c) one package added to the template: target delta ≤ 3 %.
//
// Then it publishes the four distinct builds (the base, (b), (c) and
// one more changed file), oldest first, with delta depths 1, 2 and 3
// (publish --delta-depth), and prints what each depth costs: the deltas
// stored and the publish time of each version.
//
// Each build is published into a local registry, so the table also shows
// what publish did (the delta it listed). It exits 1 when a target is
// missed.
//
//	go run ./bench/delta -publish bin/publish [-appliance nginx] [-cache .build/.cache]
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/delta"
	"github.com/incus-appliance/registry/internal/osarch"
)

type buildOut struct {
	meta, root  string
	fingerprint string
	size        int64
	published   string // what publish did
}

func main() {
	publishBin := flag.String("publish", "bin/publish", "publish binary")
	name := flag.String("appliance", "nginx", "appliance (copied from -appliances; the original is not modified)")
	appliances := flag.String("appliances", "appliances", "folder of appliance folders")
	cache := flag.String("cache", ".build/.cache", "distrobuilder download cache shared with normal builds")
	changeFile := flag.String("change-file", "files/index.html", "file under the appliance folder that case (b) changes")
	addPackage := flag.String("add-package", "less", "package that case (c) adds")
	keep := flag.Bool("keep", false, "keep the work folder")
	flag.Parse()
	log.SetFlags(0)
	ctx := context.Background()
	check(delta.Available())

	work, err := os.MkdirTemp("", "bench-delta-")
	check(err)
	if *keep {
		log.Printf("work folder: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	apps := filepath.Join(work, "appliances")
	check(os.MkdirAll(apps, 0o755))
	check(exec.Command("cp", "-a", filepath.Join(*appliances, *name), apps).Run())
	for _, shared := range []string{"_bases", appliance.InterfacesDir} {
		check(exec.Command("cp", "-a", filepath.Join(*appliances, shared), apps).Run())
	}
	app := filepath.Join(apps, *name)
	abs := func(p string) string { a, err := filepath.Abs(p); check(err); return a }
	cacheDir, pub := abs(*cache), abs(*publishBin)
	buildDir, reg := filepath.Join(work, "build"), filepath.Join(work, "registry")

	n := 0
	build := func(label string, force bool) buildOut {
		n++
		args := []string{"build", *name, "--variant", "default", "--appliances", apps, "--build-dir", buildDir, "--cache-dir", cacheDir, "--compression", "xz", "--quiet"}
		if force {
			args = append(args, "--force")
		}
		start := time.Now()
		run(pub, args...)
		out := buildOut{
			meta: filepath.Join(work, fmt.Sprintf("%d.incus.tar.xz", n)),
			root: filepath.Join(work, fmt.Sprintf("%d.rootfs.squashfs", n)),
		}
		built := builder.Target{Root: buildDir, Name: *name, Arch: osarch.Host()}
		copyFile(built.Metadata(), out.meta)
		copyFile(built.Rootfs(), out.root)
		out.fingerprint, out.size = fingerprint(out.meta, out.root)
		var res []struct {
			Changed bool `json:"changed"`
			Deltas  []struct {
				Size   int64 `json:"size"`
				Listed bool  `json:"listed"`
			} `json:"deltas"`
		}
		check(json.Unmarshal([]byte(run(pub, *name, "--appliances", apps, "--build-dir", buildDir, "--bucket", reg, "--json", "--no-progress")), &res))
		switch {
		case len(res) == 0:
		case !res[0].Changed:
			out.published = "nothing to publish"
		case len(res[0].Deltas) > 0 && res[0].Deltas[0].Listed:
			out.published = fmt.Sprintf("published with a %d-byte delta from the previous version", res[0].Deltas[0].Size)
		default:
			out.published = "published, no delta"
		}
		log.Printf("build %d (%s): %s in %s, fingerprint %s; %s", n, label, human(out.size), time.Since(start).Round(time.Second), out.fingerprint[:12], out.published)
		return out
	}

	base := build("base", true)
	a := build("rebuild, unchanged inputs", true)
	f := filepath.Join(app, *changeFile)
	data, err := os.ReadFile(f)
	check(err)
	check(os.WriteFile(f, append(data, []byte("<!-- changed by bench-delta -->\n")...), 0o644))
	b := build("one changed file", false)
	tmpl := filepath.Join(app, "image.yaml")
	data, err = os.ReadFile(tmpl)
	check(err)
	edited := strings.Replace(string(data), "packages: [", "packages: ["+*addPackage+", ", 1)
	if edited == string(data) {
		log.Fatalf("%s: no \"packages: [\" list to add %s to", tmpl, *addPackage)
	}
	check(os.WriteFile(tmpl, []byte(edited), 0o644))
	c := build("one package added", false)
	data, err = os.ReadFile(f)
	check(err)
	check(os.WriteFile(f, append(data, []byte("<!-- changed again by bench-delta -->\n")...), 0o644))
	d := build("another changed file", false)

	type row struct {
		name      string
		from, to  buildOut
		target    float64
		sameImage bool
	}
	rows := []row{
		{"(a) rebuild, unchanged inputs", base, a, 0, true},
		{"(b) one changed file under files/", a, b, 0.2, false},
		{"(c) one package added (" + *addPackage + ")", b, c, 3, false},
	}
	fmt.Printf("\n%-36s %14s %12s %9s %8s  %s\n", "case", "full bytes", "delta bytes", "ratio", "target", "result")
	failed := false
	for _, r := range rows {
		d, err := delta.Make(ctx, r.from.root, r.to.root, filepath.Join(work, "d.vcdiff"), sha256File(r.to.root))
		check(err)
		ratio := 100 * float64(d.Size) / float64(r.to.size)
		var target, result string
		if r.sameImage {
			target = "same fp"
			result = "identical fingerprint, " + r.to.published
			if r.from.fingerprint != r.to.fingerprint {
				result, failed = "MISSED: fingerprint "+r.to.fingerprint[:12]+" != "+r.from.fingerprint[:12], true
			}
		} else {
			target = fmt.Sprintf("≤ %.1f %%", r.target)
			result = "met; " + r.to.published
			if ratio > r.target {
				result, failed = "MISSED; "+r.to.published, true
			}
		}
		fmt.Printf("%-36s %14d %12d %8.3f%% %8s  %s\n", r.name, r.to.size, d.Size, ratio, target, result)
	}
	depthCost(pub, work, *name, []buildOut{base, b, c, d}, []int{1, 2, 3})
	if failed {
		os.Exit(1)
	}
}

func run(bin string, args ...string) string {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("%s %s: %v", bin, strings.Join(args, " "), err)
	}
	return string(out)
}

// fingerprint is the image fingerprint, sha256(metadata + root), and the
// root's size.
func fingerprint(meta, root string) (string, int64) {
	h := sha256.New()
	var size int64
	for _, p := range []string{meta, root} {
		f, err := os.Open(p)
		check(err)
		size, err = io.Copy(h, f)
		f.Close()
		check(err)
	}
	return hex.EncodeToString(h.Sum(nil)), size
}

func sha256File(p string) string {
	f, err := os.Open(p)
	check(err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	check(err)
	return hex.EncodeToString(h.Sum(nil))
}

func copyFile(src, dst string) {
	check(exec.Command("cp", src, dst).Run())
}

func human(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
