// Command s3upload measures, in one run against one local MinIO, how fast
// `publish` puts a big rootfs into S3, in its two cases, compared with
// rclone and with a bare aws-sdk-go-v2 multipart upload (transfermanager,
// default settings):
//
//   - publish built: `publish NAME` of a built appliance folder with its
//     digest record (what `publish build` leaves): no pass before the
//     upload; targets ≥ 0.95× the bare SDK upload and ≥ 2× rclone;
//   - publish file: `publish NAME --metadata F --rootfs F` of files with no
//     record: one hashing pass, then the upload; target ≥ 0.8× bare SDK.
//
// It also times transfermanager given the guarantees publish keeps
// (SHA-256 checksum on every part, the whole file's SHA-256 checked before
// completion, If-None-Match on completion, abort on failure): the
// comparison that decides whether s3store's hand-written multipart stays.
//
//	go run ./bench/s3upload -publish bin/publish [-size 1GiB] [-runs 3]
//
// Every publish run publishes a new image (a new metadata tarball over the
// same root file), so it always uploads the whole root; the publish times
// include reading, hashing and checking the files. The root is in the page
// cache for every uploader.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/miniotest"
)

// uploader is one row of the table.
type uploader struct {
	name  string
	times []time.Duration
	// CPU time per run: this side (client) and MinIO's (server).
	client, server []time.Duration
}

func main() {
	if !run() {
		os.Exit(1) // after run's cleanup: MinIO stopped, files removed
	}
}

// run runs the benchmark and reports whether every target was met.
func run() bool {
	publishBin := flag.String("publish", "bin/publish", "publish binary")
	size := flag.Int64("size", 1<<30, "root file size in bytes")
	runs := flag.Int("runs", 3, "runs of each uploader (the median is reported)")
	flag.Parse()
	log.SetFlags(0)
	ctx := context.Background()

	bin, err := miniotest.Binary()
	check(err)
	dir, err := os.MkdirTemp("", "s3upload-bench-")
	check(err)
	atExit(func() { os.RemoveAll(dir) })
	defer cleanup()
	srv, err := miniotest.StartBinary(bin, filepath.Join(dir, "minio"), miniotest.Options{Buckets: []string{"bench"}})
	check(err)
	atExit(srv.Stop)
	minioPID = findPID(filepath.Join(dir, "minio", "data"))

	// The same root (hard links: one file, one page cache) as an arbitrary
	// file and as a built appliance's output.
	fileDir := filepath.Join(dir, "file")
	apps, builds := filepath.Join(dir, "appliances"), filepath.Join(dir, "build")
	bt := builder.Target{Root: builds, Name: "benchbuilt", Arch: "amd64"}
	builtDir, builtMeta, builtRoot := bt.Dir(), bt.Metadata(), bt.Rootfs()
	check(os.MkdirAll(fileDir, 0o755))
	check(os.MkdirAll(builtDir, 0o755))
	root := filepath.Join(fileDir, "rootfs.squashfs")
	check(writeRoot(root, *size))
	check(os.Link(root, builtRoot))
	check(writeAppliance(apps, "benchbuilt"))
	rclone, rcloneErr := exec.LookPath("rclone")

	var (
		built   = &uploader{name: "publish built"}
		file    = &uploader{name: "publish file"}
		rc      = &uploader{name: "rclone"}
		sdk     = &uploader{name: "bare SDK"}
		checked = &uploader{name: "SDK + checks"}
	)
	publish := func(args ...string) func() error {
		return func() error {
			// --no-delta: every run is a new version of its product, whose
			// delta (random roots) would be make bench-delta's business.
			cmd := exec.Command(*publishBin, append(args, "--bucket", "s3://bench/registry", "--no-delta", "--quiet", "--no-progress")...)
			cmd.Env = append(os.Environ(), srv.Env()...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if len(out) > 0 { // a warning: the record was not used
				return fmt.Errorf("unexpected output: %s", out)
			}
			return nil
		}
	}
	rootSHA, err := fileSHA256(root) // what publish knows from a record or its inspection
	check(err)
	for run := range *runs {
		// A new image each run: new metadata over the same root; the built
		// one recorded as `publish build` records it (not timed: the
		// build's work).
		check(writeMetadata(builtMeta, time.Date(2026, 1, 2, 0, 0, run, 0, time.UTC)))
		check(builder.RecordDigests(ctx, builtDir))
		meta := filepath.Join(fileDir, fmt.Sprintf("meta%d.tar.xz", run))
		check(writeMetadata(meta, time.Date(2026, 1, 1, 0, 0, run, 0, time.UTC)))

		steps := []step{
			{built, publish("benchbuilt", "--appliances", apps, "--build-dir", builds)},
			{file, publish("bench", "--metadata", meta, "--rootfs", root)},
			{sdk, func() error { return bareSDK(ctx, srv, root, fmt.Sprintf("sdk/run%d", run)) }},
			{checked, func() error { return checkedSDK(ctx, srv, root, rootSHA, fmt.Sprintf("checked/run%d", run)) }},
		}
		if rcloneErr == nil {
			steps = append(steps, step{rc, func() error {
				remote := fmt.Sprintf(":s3,provider=Minio,endpoint=%q,access_key_id=%s,secret_access_key=%s,region=us-east-1:bench/rclone/run%d", srv.Endpoint, srv.AccessKey, srv.SecretKey, run)
				cmd := exec.Command(rclone, "copyto", root, remote)
				cmd.Env = withoutEnv(os.Environ(), "AWS_CA_BUNDLE") // rclone 1.60 fails on it
				out, err := cmd.CombinedOutput()
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			}})
		}
		// Each run starts with another uploader, so that none always goes
		// first (or after the same one).
		for i := range steps {
			st := steps[(i+run)%len(steps)]
			timeIt(st.u, st.f)
		}
	}

	mib := float64(*size) / (1 << 20)
	rate := func(u *uploader) float64 { return mib / median(u.times).Seconds() }
	fmt.Printf("\n%s root, median of %d runs, MinIO on loopback\n", human(*size), *runs)
	fmt.Printf("%-14s %8s %10s %11s %10s   %s\n", "uploader", "time", "MiB/s", "client CPU", "MinIO CPU", "runs")
	for _, u := range []*uploader{built, file, rc, sdk, checked} {
		if len(u.times) == 0 {
			fmt.Printf("%-14s %8s %10s %11s %10s   (%v: apt-get install rclone)\n", u.name, "-", "-", "-", "-", rcloneErr)
			continue
		}
		var each []string
		for _, d := range u.times {
			each = append(each, fmt.Sprintf("%.2fs", d.Seconds()))
		}
		fmt.Printf("%-14s %7.2fs %10.1f %10.2fs %9.2fs   %s\n", u.name, median(u.times).Seconds(), rate(u),
			median(u.client).Seconds(), median(u.server).Seconds(), strings.Join(each, " "))
	}
	ok := true
	target := func(what string, r, want float64) {
		ok = ok && r >= want
		fmt.Printf("%-34s = %.2f× (target ≥ %.2f×) %s\n", what, r, want, verdict(r >= want))
	}
	target("publish built / bare SDK", rate(built)/rate(sdk), 0.95)
	if len(rc.times) > 0 {
		target("publish built / rclone", rate(built)/rate(rc), 2)
	}
	target("publish file / bare SDK", rate(file)/rate(sdk), 0.8)
	fmt.Printf("%-34s = %.2f× (s3store's multipart vs transfermanager, same guarantees)\n", "publish built / SDK + checks", rate(built)/rate(checked))
	return ok
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT MET"
}

// step is one timed upload.
type step struct {
	u *uploader
	f func() error
}

// timeIt times f for u. The dirty pages of the previous upload (MinIO's
// writes) are flushed first, so that their writeback does not slow the
// next uploader down.
func timeIt(u *uploader, f func() error) {
	syscall.Sync()
	cpu0, start := cpuNow(minioPID), time.Now()
	if err := f(); err != nil {
		cleanup()
		log.Fatalf("%s: %v", u.name, err)
	}
	d, cpu := time.Since(start), cpuNow(minioPID)
	client, server := cpu.client-cpu0.client, cpu.server-cpu0.server
	log.Printf("%-14s %6.2fs  CPU: client %5.2fs, MinIO %5.2fs", u.name, d.Seconds(), client.Seconds(), server.Seconds())
	u.times = append(u.times, d)
	u.client, u.server = append(u.client, client), append(u.server, server)
}

// minioPID is the benchmark's MinIO server, whose CPU time is reported.
var minioPID int

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func withoutEnv(env []string, name string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
}

func human(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

func check(err error) {
	if err != nil {
		cleanup()
		log.Fatal(err)
	}
}

// cleanups run, newest first, when the benchmark ends, also on a fatal
// error (log.Fatal and os.Exit skip deferred calls).
var cleanups []func()

func atExit(f func()) { cleanups = append(cleanups, f) }

func cleanup() {
	for len(cleanups) > 0 {
		f := cleanups[len(cleanups)-1]
		cleanups = cleanups[:len(cleanups)-1]
		f()
	}
}
