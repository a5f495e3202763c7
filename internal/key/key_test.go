package key

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	good := []string{
		"streams/v1/images.json",
		"images/" + strings.Repeat("a", 64) + "/rootfs.squashfs",
		"images/" + strings.Repeat("b", 64) + ".incus.tar.xz",
		"images/debian/bookworm/amd64/default/20261129_05:24/rootfs.squashfs",
		"a+b/c~d/e@f/g=h",
		"x.",
		strings.Repeat("k", MaxLen),
	}
	for _, k := range good {
		if err := Check(k); err != nil {
			t.Errorf("Check(%q) = %v, want nil", k, err)
		}
	}
	bad := []string{
		"", "/abs", "trailing/", "a//b", ".", "..", "a/../b", "a/./b", "images/.hidden",
		".registry.lock", `a\b`, "a%2fb", "a b", "a\x00b", "a\nb", "a\x7fb", "ä",
		"a?b", "a#b", "a*b", "a,b", strings.Repeat("k", MaxLen+1),
	}
	for _, k := range bad {
		err := Check(k)
		if err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q) = %v, want an ErrInvalid error", k, err)
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, p := range []string{"", "images/", "images", "streams/v1/"} {
		if err := CheckPrefix(p); err != nil {
			t.Errorf("CheckPrefix(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"/", "//", "a//", "../", ".x/"} {
		if err := CheckPrefix(p); err == nil {
			t.Errorf("CheckPrefix(%q) = nil, want an error", p)
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("images/abc/rootfs.squashfs")
	f.Add("a/../b")
	f.Fuzz(func(t *testing.T, k string) {
		if Check(k) != nil {
			return
		}
		for _, seg := range strings.Split(k, "/") {
			if seg == "" || seg == "." || seg == ".." || seg[0] == '.' {
				t.Fatalf("accepted %q with segment %q", k, seg)
			}
		}
		if strings.ContainsAny(k, "\\% \x00") {
			t.Fatalf("accepted %q", k)
		}
	})
}
