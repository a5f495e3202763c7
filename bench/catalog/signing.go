package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"path/filepath"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/incus-appliance/registry/internal/miniotest"
	"github.com/incus-appliance/registry/internal/simplestreams/sstest"
)

// signingRow is the cost of signing at one scale: the same catalog in two
// buckets, one signed, one not, and the same publishes into each.
type signingRow struct {
	scale                   string
	jsonMB                  float64
	plain, signed           proc // median publish of -runs images
	sign, verify, verifyKey proc // publish sign; verify --no-files without and with --keyring
}

// signingCost measures what signing costs a publish (-signing): at 1×,
// 10× in one file and 10× in -shards files, -runs publishes into an
// unsigned bucket and the same into a signed one (wall, CPU, peak RSS,
// median), the one-off `publish sign` of the whole catalog, and
// `publish verify --no-files` without and with --keyring.
func signingCost(dir, bin string, srv *miniotest.Server) int {
	key := filepath.Join(dir, "signing-key.asc")
	keyring := filepath.Join(dir, "keyring.asc")
	if p := run(nil, bin+"/publish", "key", "generate", key); p.code != 0 {
		log.Fatalf("key generate: %s", p.out)
	}
	if p := run(nil, bin+"/publish", "key", "export", "--signing-key", key, "--output", keyring); p.code != 0 {
		log.Fatalf("key export: %s", p.out)
	}
	var rows []signingRow
	for i, s := range []struct {
		name   string
		scale  int
		shards int
	}{{"1×", 1, 1}, {"10×", 10, 1}, {fmt.Sprintf("10×, %d files", *shards), 10, *shards}} {
		rows = append(rows, measureSigning(dir, bin, srv, s.name, *products*s.scale, s.shards, i, key, keyring))
	}
	fmt.Println()
	fmt.Println("| scale | largest catalog file | publish, unsigned (wall / CPU / RSS) | publish, signed (wall / CPU / RSS) | CPU added | publish sign, whole catalog (wall / CPU / RSS) | verify --no-files (wall / CPU) | verify --no-files --keyring (wall / CPU) |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %.1f MB | %s / %s / %.0f MB | %s / %s / %.0f MB | %+.0f %% | %s / %s / %.0f MB | %s / %s | %s / %s |\n",
			r.scale, r.jsonMB, ms(r.plain.wall), ms(r.plain.cpu), r.plain.rssMB, ms(r.signed.wall), ms(r.signed.cpu), r.signed.rssMB,
			100*(float64(r.signed.cpu)/float64(max(r.plain.cpu, time.Millisecond))-1),
			ms(r.sign.wall), ms(r.sign.cpu), r.sign.rssMB, ms(r.verify.wall), ms(r.verify.cpu), ms(r.verifyKey.wall), ms(r.verifyKey.cpu))
	}
	return 0
}

func measureSigning(dir, bin string, srv *miniotest.Server, scale string, n, nfiles, idx int, key, keyring string) signingRow {
	ctx := context.Background()
	log.Printf("%s: building a catalog of %d products × %d versions in %d file(s)", scale, n, *versions, nfiles)
	tree := sstest.Build(sstest.Spec{Products: n, Versions: *versions, FileSize: 64, NoFiles: true})
	files := layOut(tree.Catalog, nfiles)
	r := signingRow{scale: scale, jsonMB: float64(len(files[largestFile(files)])) / (1 << 20)}
	env := srv.Env()
	locs := map[bool]string{}
	for _, signed := range []bool{false, true} {
		bucket := fmt.Sprintf("signing%d-%v", idx, signed)
		check(srv.CreateBucket(ctx, bucket), "bucket")
		for k, b := range files {
			_, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: bytes.NewReader(b), ContentType: aws.String("application/json")})
			check(err, "put "+k)
		}
		locs[signed] = "s3://" + bucket
	}
	log.Printf("%s: publish sign", scale)
	r.sign = run(env, bin+"/publish", "sign", "--bucket", locs[true], "--signing-key", key, "--quiet")
	if r.sign.code != 0 {
		log.Fatalf("sign: %s", r.sign.out)
	}
	var plain, signed []proc
	for i := range *runs {
		sample := filepath.Join(dir, fmt.Sprintf("sample-%d-%d", idx, i))
		created := time.Date(2027, 1, 1, i, 0, 0, 0, time.UTC).Format(time.RFC3339)
		if p := run(nil, bin+"/sampleimage", "-out", sample, "-name", "bench", "-created", created); p.code != 0 {
			log.Fatalf("sampleimage: %s", p.out)
		}
		args := []string{"bench", "--metadata", sample + "/incus.tar.xz", "--rootfs", sample + "/rootfs.squashfs", "--no-progress", "--no-delta", "--quiet"}
		// Alternate which goes first, so that neither always meets a cold
		// MinIO or page cache.
		for _, withKey := range []bool{i%2 == 0, i%2 == 1} {
			a := append(slices.Clone(args), "--bucket", locs[withKey])
			if withKey {
				a = append(a, "--signing-key", key)
			}
			p := run(env, bin+"/publish", a...)
			if p.code != 0 {
				log.Fatalf("publish (signed: %v): %s", withKey, p.out)
			}
			if withKey {
				signed = append(signed, p)
			} else {
				plain = append(plain, p)
			}
		}
	}
	r.plain, r.signed = medianProc(plain), medianProc(signed)
	log.Printf("%s: verify", scale)
	r.verify = run(env, bin+"/publish", "verify", "--bucket", locs[true], "--no-files", "--json") // the synthetic files are absent: exit 1 expected
	r.verifyKey = run(env, bin+"/publish", "verify", "--bucket", locs[true], "--no-files", "--json", "--keyring", keyring)
	return r
}

// medianProc is the run of median CPU.
func medianProc(ps []proc) proc {
	slices.SortFunc(ps, func(a, b proc) int { return int(a.cpu - b.cpu) })
	return ps[len(ps)/2]
}
