package signing_test

import (
	"bytes"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// catalogDoc returns a products document of about size bytes shaped like
// the registry's images.json (two-space indent, a final newline): the
// sizes of issue 20's targets, 2 MB and a 10× catalog of 120 MB.
func catalogDoc(size int) []byte {
	docs.Lock()
	defer docs.Unlock()
	if d, ok := docs.m[size]; ok {
		return d
	}
	var b bytes.Buffer
	b.Grow(size + 4096)
	b.WriteString("{\n  \"content_id\": \"images\",\n  \"datatype\": \"image-downloads\",\n  \"format\": \"products:1.0\",\n  \"products\": {\n")
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "    \"app%d:amd64\": {\n      \"aliases\": \"app%d\",\n      \"arch\": \"amd64\",\n      \"os\": \"debian\",\n      \"release\": \"bookworm\",\n      \"versions\": {\n", i, i)
		for v := 0; v < 3; v++ {
			if v > 0 {
				b.WriteString(",\n")
			}
			fp := fmt.Sprintf("%064x", i*3+v)
			fmt.Fprintf(&b, "        \"2026112%d_0000\": {\n          \"items\": {\n", v)
			fmt.Fprintf(&b, "            \"incus.tar.xz\": {\n              \"ftype\": \"incus.tar.xz\",\n              \"path\": \"images/%s/incus.tar.xz\",\n              \"sha256\": \"%s\",\n              \"size\": 688,\n              \"combined_squashfs_sha256\": \"%s\"\n            },\n", fp, fp, fp)
			fmt.Fprintf(&b, "            \"squashfs\": {\n              \"ftype\": \"squashfs\",\n              \"path\": \"images/%s/rootfs.squashfs\",\n              \"sha256\": \"%s\",\n              \"size\": 67108864\n            }\n          }\n        }", fp, fp)
		}
		b.WriteString("\n      }\n    }")
	}
	b.WriteString("\n  }\n}\n")
	docs.m[size] = b.Bytes()
	return b.Bytes()
}

var docs = struct {
	sync.Mutex
	m map[int][]byte
}{m: map[int][]byte{}}

var benchSizes = []struct {
	name string
	size int
}{{"2MB", 2 << 20}, {"120MB", 120 << 20}}

func BenchmarkSign(b *testing.B) {
	k := newTestKey(b, "bench")
	for _, s := range benchSizes {
		doc := catalogDoc(s.size)
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			defer reportCPU(b)()
			for b.Loop() {
				if _, err := k.Signer.Sign(doc, testNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	k := newTestKey(b, "bench")
	kr := k.keyring(b)
	for _, s := range benchSizes {
		signed := k.sign(b, string(catalogDoc(s.size)))
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(signed)))
			defer reportCPU(b)()
			for b.Loop() {
				if _, err := kr.Verify(signed, testNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// reportCPU reports the process CPU time (user + system) per operation
// beside the wall time: on a shared machine the wall time also counts
// the time other processes held the CPU.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64((cpuTime()-start).Milliseconds())/float64(b.N), "cpu-ms/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
