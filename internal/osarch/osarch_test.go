package osarch

import "testing"

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{"x86_64": "amd64", "AMD64": "amd64", " aarch64 ": "arm64", "armv7": "armhf", "ppc64le": "ppc64el", "i686": "i386"} {
		if got, err := Normalize(in); err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Normalize("mips"); err == nil {
		t.Error("mips accepted: the registry does not write it")
	}
	if Canonical("mips") != "mips" || Canonical("x86_64") != "amd64" {
		t.Error("Canonical must map known spellings and keep unknown names")
	}
}

func TestClientNames(t *testing.T) {
	for _, s := range []string{"amd64", "x86_64", "mips64el", "loongarch64", "generic_64"} {
		if !KnownToClient(s) {
			t.Errorf("%s: the Incus client knows it", s)
		}
	}
	if KnownToClient("cloud") || Known("mips") {
		t.Error("cloud is no architecture; mips is the client's only")
	}
}

func TestKernelAndHost(t *testing.T) {
	for _, a := range table {
		if k, ok := Kernel(a.name); !ok || k == "" {
			t.Errorf("%s has no distrobuilder name", a.name)
		}
	}
	if _, ok := Kernel("x86_64"); ok {
		t.Error("Kernel takes canonical names only")
	}
	if !Known(Host()) {
		t.Errorf("host architecture %q is not in the table", Host())
	}
}
