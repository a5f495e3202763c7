package catalog

import (
	"errors"
	"testing"
	"time"
)

// A product records its writer: publish, or the mirror that created it.
// A merger adds versions only to its own products; IntoExisting lets it
// into another writer's (reported as Joined), and into one recording no
// writer (which it then records). A copy that changes nothing is no
// change, whoever wrote the product.
func TestMergeRespectsWriters(t *testing.T) {
	t1, t2 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	src := New()
	mustAdd(t, src, img("hello", "amd64", t1, "1"))
	mustAdd(t, src, img("hello", "amd64", t2, "2"))
	copies := src.Copies()
	mirrorA, mirrorB := Merger{Writer: MirrorWriter("https://a")}, Merger{Writer: MirrorWriter("https://b")}

	c := New()
	mustAdd(t, c, img("hello", "amd64", t1, "1"))
	pk := ProductKey("hello", "amd64")
	if w := c.Products[pk].Writer; w != WriterPublish {
		t.Fatalf("published product records %q, want %q", w, WriterPublish)
	}
	res, errs := c.MergeAll(copies, mirrorA)
	var owned *ProductOwnedError
	if res[0].Changed || errs[0] != nil || !errors.As(errs[1], &owned) || owned.Owner != WriterPublish {
		t.Fatalf("merge into publish's product = %+v, %v; want the same version unchanged, the new one refused as publish's", res, errs)
	}
	if len(c.Products[pk].Versions) != 1 {
		t.Fatalf("a refused merge changed the product")
	}
	res, errs = c.MergeAll(copies[1:], Merger{Writer: mirrorA.Writer, IntoExisting: true})
	if errs[0] != nil || !res[0].Changed || res[0].Joined != WriterPublish || c.Products[pk].Writer != WriterPublish {
		t.Fatalf("merge with IntoExisting = %+v, %v, writer %q; want the version in, joined publish's product, still publish's", res, errs, c.Products[pk].Writer)
	}

	c = New()
	if _, errs := c.MergeAll(copies[:1], mirrorA); errs[0] != nil || c.Products[pk].Writer != mirrorA.Writer {
		t.Fatalf("new product by mirror A: %v, writer %q", errs[0], c.Products[pk].Writer)
	}
	if _, errs := c.MergeAll(copies[1:], mirrorB); !errors.As(errs[0], &owned) || owned.Owner != mirrorA.Writer {
		t.Fatalf("mirror B into mirror A's product: %v, want it refused", errs[0])
	}
	c.Products[pk].Writer = "" // rewritten by a tool that drops the field
	if _, errs := c.MergeAll(copies[1:], mirrorA); !errors.As(errs[0], &owned) || owned.Owner != "" {
		t.Fatalf("mirror A into a product recording no writer: %v, want it refused", errs[0])
	}
	res, errs = c.MergeAll(copies[1:], Merger{Writer: mirrorA.Writer, IntoExisting: true})
	if errs[0] != nil || res[0].Joined == "" || c.Products[pk].Writer != mirrorA.Writer {
		t.Fatalf("IntoExisting into a product recording no writer = %+v, %v, writer %q; want it in and recording mirror A", res, errs, c.Products[pk].Writer)
	}
}
