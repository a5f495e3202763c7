package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/image/imagetest"
)

// chromium runs headless Debian chromium on url with a fresh profile,
// trusting only the certificate in certFile (by its public key), and
// returns what it printed on stdout.
func chromium(t *testing.T, certFile string, args ...string) string {
	t.Helper()
	bin := requireTool(t, "chromium")
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	if certFile != "" {
		flags = append(flags, "--ignore-certificate-errors-spki-list="+spkiHash(t, certFile))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(flags, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

// spkiHash is the base64 SHA-256 of a certificate's public key, as
// chromium's --ignore-certificate-errors-spki-list wants it.
func spkiHash(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", certFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// The catalog page in a real browser: every appliance is in the DOM, the
// page and an appliance page render (a screenshot with text on it), and
// the script an appliance's description holds is shown as text, never run.
func TestCatalogPageInChromium(t *testing.T) {
	// The browser runs scripts: a page that has one does change its title.
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<html><head><title>before</title></head><body><script>document.title="SCRIPT RAN"</script></body></html>`))
	}))
	defer control.Close()
	if dom := chromium(t, "", "--dump-dom", control.URL); !strings.Contains(dom, "<title>SCRIPT RAN</title>") {
		t.Fatalf("control page: the browser ran no script (the check below would prove nothing):\n%s", dom)
	}

	folder := filepath.Join(t.TempDir(), "registry")
	evil := `Web server <script>document.title="PWNED";document.body.setAttribute("data-pwned","1")</script><img src=x onerror="document.title='PWNED'">`
	for i, name := range []string{"nginx", "redis", "postgres"} {
		spec := imagetest.DefaultSpec(name, t0)
		dir := t.TempDir()
		meta := imagetest.WriteMetadata(t, dir, spec)
		root := imagetest.WriteSquashfs(t, dir, 64<<10, int64(i+10))
		mustPublish(t, name, "--bucket", folder, "--metadata", meta, "--rootfs", root)
	}
	// The newest nginx holds the markup (the front page shows the newest
	// version's description).
	spec := imagetest.DefaultSpec("nginx", t0.Add(24*time.Hour))
	spec.Description = evil
	dir := t.TempDir()
	meta2, root2 := imagetest.WriteMetadata(t, dir, spec), imagetest.WriteSquashfs(t, dir, 64<<10, 21)
	mustPublish(t, "nginx", "--bucket", folder, "--metadata", meta2, "--rootfs", root2)
	url, cert := runEdgeproxy(t, nil, "--bucket", folder)

	dom := chromium(t, cert, "--dump-dom", url+"/")
	for _, name := range []string{"nginx", "redis", "postgres"} {
		if !strings.Contains(dom, `<div class="appliance" id="`+name+`">`) || !strings.Contains(dom, "incus launch appliance:"+name+" "+name+"-1") {
			t.Errorf("appliance %s is not in the DOM", name)
		}
	}
	if !strings.Contains(dom, "incus remote add appliance "+url+" --protocol simplestreams") {
		t.Errorf("the DOM lacks the remote add line for %s", url)
	}
	checkNoScriptRan(t, dom)

	dom = chromium(t, cert, "--dump-dom", url+"/appliance/nginx")
	if !strings.Contains(dom, `<h1 id="appliance">nginx</h1>`) || strings.Count(dom, `<tr class="version">`) != 2 {
		t.Errorf("the nginx page does not show nginx with 2 versions:\n%s", dom)
	}
	if strings.Index(dom, "20261121_1200") > strings.Index(dom, "20261120_1200") {
		t.Error("the nginx page does not list the newest version first")
	}
	checkNoScriptRan(t, dom)

	for _, page := range []string{"/", "/appliance/nginx"} {
		shot := filepath.Join(t.TempDir(), "page.png")
		chromium(t, cert, "--screenshot="+shot, "--window-size=1280,1600", url+page)
		f, err := os.Open(shot)
		if err != nil {
			t.Fatalf("no screenshot of %s: %v", page, err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("screenshot of %s: %v", page, err)
		}
		dark := 0
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y += 2 {
			for x := b.Min.X; x < b.Max.X; x += 2 {
				if r, g, bl, _ := img.At(x, y).RGBA(); r+g+bl < 3*0x4000 {
					dark++
				}
			}
		}
		t.Logf("screenshot of %s: %dx%d, %d dark sample pixels", page, b.Dx(), b.Dy(), dark)
		if dark < 500 {
			t.Errorf("the screenshot of %s shows (almost) no text", page)
		}
		if dir := os.Getenv("REGISTRY_SCREENSHOTS"); dir != "" {
			data, _ := os.ReadFile(shot)
			os.WriteFile(filepath.Join(dir, strings.Trim(strings.ReplaceAll(page, "/", "-"), "-")+"page.png"), data, 0o644)
		}
	}
}

// checkNoScriptRan checks that the description's markup is text in the
// DOM and that neither its script nor its onerror handler ran.
func checkNoScriptRan(t *testing.T, dom string) {
	t.Helper()
	if strings.Contains(dom, "<title>PWNED") || strings.Contains(dom, `data-pwned="1"`) {
		t.Errorf("a script from the catalog ran:\n%s", dom)
	}
	if strings.Contains(dom, "<script") || strings.Contains(dom, "<img") {
		t.Errorf("the DOM holds a script or image element from the catalog")
	}
	if !strings.Contains(dom, "Web server &lt;script&gt;") {
		t.Errorf("the description is not shown as text:\n%s", dom)
	}
}
