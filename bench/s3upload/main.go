// Command s3upload measures, in one run against one local MinIO, how fast
// `publish` puts a big rootfs into S3 compared with rclone and with a bare
// aws-sdk-go-v2 multipart upload (transfermanager, default settings), and
// reports the three throughputs and the ratios against the targets:
// publish ≥ 2× rclone and ≥ 0.9× the bare SDK upload.
//
//	go run ./bench/s3upload -publish bin/publish [-size 1GiB] [-runs 3]
//
// Each publish run publishes a new image (a new metadata tarball over the
// same root file), so it always uploads the whole root; the publish time
// includes reading and hashing the files.
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
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/incus-appliance/registry/internal/miniotest"
)

func main() {
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
	defer os.RemoveAll(dir)
	srv, err := miniotest.StartBinary(bin, filepath.Join(dir, "minio"), miniotest.Options{Buckets: []string{"bench"}})
	check(err)
	defer srv.Stop()

	root := filepath.Join(dir, "rootfs.squashfs")
	check(writeRoot(root, *size))
	rclone, rcloneErr := exec.LookPath("rclone")

	var tPublish, tRclone, tSDK []time.Duration
	for run := range *runs {
		meta := filepath.Join(dir, fmt.Sprintf("meta%d", run))
		check(writeMetadata(meta, time.Date(2026, 1, 1, 0, 0, run, 0, time.UTC)))
		tPublish = append(tPublish, timeIt("publish", func() error {
			cmd := exec.Command(*publishBin, "bench", "--bucket", "s3://bench/registry", "--metadata", meta, "--rootfs", root, "--quiet", "--no-progress")
			cmd.Env = append(os.Environ(), srv.Env()...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}))
		if rcloneErr == nil {
			tRclone = append(tRclone, timeIt("rclone", func() error {
				remote := fmt.Sprintf(":s3,provider=Minio,endpoint=%q,access_key_id=%s,secret_access_key=%s,region=us-east-1:bench/rclone/run%d", srv.Endpoint, srv.AccessKey, srv.SecretKey, run)
				cmd := exec.Command(rclone, "copyto", root, remote)
				cmd.Env = withoutEnv(os.Environ(), "AWS_CA_BUNDLE") // rclone 1.60 fails on it
				out, err := cmd.CombinedOutput()
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			}))
		}
		tSDK = append(tSDK, timeIt("bare SDK", func() error {
			f, err := os.Open(root)
			if err != nil {
				return err
			}
			defer f.Close()
			tm := transfermanager.New(srv.Client())
			_, err = tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
				Bucket: aws.String("bench"), Key: aws.String(fmt.Sprintf("sdk/run%d", run)), Body: f,
			})
			return err
		}))
	}

	mib := float64(*size) / (1 << 20)
	rate := func(ds []time.Duration) float64 { return mib / median(ds).Seconds() }
	fmt.Printf("\n%s root, median of %d runs, MinIO on loopback\n", human(*size), *runs)
	fmt.Printf("%-10s %8s %10s\n", "uploader", "time", "MiB/s")
	fmt.Printf("%-10s %8.1fs %10.1f\n", "publish", median(tPublish).Seconds(), rate(tPublish))
	if len(tRclone) > 0 {
		fmt.Printf("%-10s %8.1fs %10.1f\n", "rclone", median(tRclone).Seconds(), rate(tRclone))
	} else {
		fmt.Printf("%-10s %8s %10s  (%v: apt-get install rclone)\n", "rclone", "-", "-", rcloneErr)
	}
	fmt.Printf("%-10s %8.1fs %10.1f\n", "bare SDK", median(tSDK).Seconds(), rate(tSDK))
	ok := true
	if len(tRclone) > 0 {
		r := rate(tPublish) / rate(tRclone)
		ok = ok && r >= 2
		fmt.Printf("publish / rclone   = %.2f× (target ≥ 2.0×) %s\n", r, verdict(r >= 2))
	}
	r := rate(tPublish) / rate(tSDK)
	ok = ok && r >= 0.9
	fmt.Printf("publish / bare SDK = %.2f× (target ≥ 0.9×) %s\n", r, verdict(r >= 0.9))
	if !ok {
		os.Exit(1)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT MET"
}

func timeIt(name string, f func() error) time.Duration {
	start := time.Now()
	if err := f(); err != nil {
		log.Fatalf("%s: %v", name, err)
	}
	d := time.Since(start)
	log.Printf("%-8s %6.2fs", name, d.Seconds())
	return d
}

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
		log.Fatal(err)
	}
}
