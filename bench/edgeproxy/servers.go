package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// proc is one running server under test.
type proc struct {
	name   string
	port   int
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// start runs bin with args in its own process group, output to dir/NAME.log.
func start(name, dir string, port int, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, port: port, dir: dir, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	return p, nil
}

// logTail is the end of the server's log, for error messages.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, p.name+".log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// stop ends the server's process group (only the group this program
// started): SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
	p.cmd = nil
}

func (p *proc) url(path string) string {
	return fmt.Sprintf("https://127.0.0.1:%d/%s", p.port, path)
}

// pids returns the server's process and all its descendants (nginx's
// master, workers and cache helpers).
func (p *proc) pids() []int {
	root := p.cmd.Process.Pid
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[pid] = pp
	}
	var out []int
	for pid := range parent {
		for q := pid; q > 1; q = parent[q] {
			if q == root {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// memKB returns VmRSS and VmHWM (KiB) of one process.
func memKB(pid int) (rss, hwm int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, k := range []struct {
			name string
			dst  *int64
		}{{"VmRSS:", &rss}, {"VmHWM:", &hwm}} {
			if rest, ok := strings.CutPrefix(line, k.name); ok {
				*k.dst, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			}
		}
	}
	return rss, hwm
}

// memory sums VmRSS and VmHWM over the server's processes (KiB). Pages
// shared between nginx processes count once per process, as RSS does.
func (p *proc) memory() (rss, hwm int64) {
	for _, pid := range p.pids() {
		r, h := memKB(pid)
		rss += r
		hwm += h
	}
	return rss, hwm
}

// cpuSeconds sums the user and system CPU time of the server's processes
// (nginx: the exited ones are not counted, none exit while measuring).
func (p *proc) cpuSeconds() float64 {
	var ticks int64
	for _, pid := range p.pids() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64) // utime, field 14
		k, _ := strconv.ParseInt(f[12], 10, 64) // stime, field 15
		ticks += u + k
	}
	return float64(ticks) / clockTicks
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// setup is what every server config needs.
type setup struct {
	Dir, Cert, Key, MinIO, Bucket, User string
	Port                                int
	CatalogTTL                          time.Duration
	// nginx buffers for image downloads (proxy_buffers NUM SIZE).
	NginxBufNum  int
	NginxBufSize string
	// ImageCache: nginx keeps image files in a proxy_cache; without, it
	// streams them from MinIO on every download.
	ImageCache bool
}

// nginxConf is a TLS reverse proxy in front of MinIO (gzip level 1 for
// JSON when the client asks, compressed per response): catalog JSON cached
// (proxy_cache, same lifetime as edgeproxy's in-memory cache, one origin
// read at a time, stale copy served while refreshing); with ImageCache,
// image files cached on disk too (proxy_cache, one fill at a time), as
// edgeproxy's disk cache does: the file numbers then compare the two
// serving a warm cache; without, nginx streams them from MinIO. Memory per
// download is bounded by proxy_buffers: 8 8k by default (nginx's stock
// value is 8 4k). TLS 1.3 prefers AES-128-GCM as Go's server does, so that
// all three encrypt with the same cipher (OpenSSL would otherwise follow
// wrk's preference for AES-256-GCM).
var nginxConf = template.Must(template.New("nginx").Parse(`# generated by bench/edgeproxy
{{if .User}}user {{.User}};
{{end}}worker_processes auto;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/nginx-error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
	access_log off;
	server_tokens off;
	gzip on;
	gzip_types application/json;
	gzip_proxied any;
	gzip_comp_level 1;
	gzip_vary on;
	keepalive_requests 1000000;
	client_body_temp_path {{.Dir}}/tmp/body;
	proxy_temp_path {{.Dir}}/tmp/proxy;
	fastcgi_temp_path {{.Dir}}/tmp/fastcgi;
	uwsgi_temp_path {{.Dir}}/tmp/uwsgi;
	scgi_temp_path {{.Dir}}/tmp/scgi;
	proxy_cache_path {{.Dir}}/cache levels=1:2 keys_zone=registry:10m max_size=1g inactive=10m use_temp_path=off;
	proxy_cache_path {{.Dir}}/images-cache levels=1:2 keys_zone=images:10m max_size=8g inactive=1d use_temp_path=off;

	upstream minio {
		server {{.MinIO}};
		keepalive 64;
	}

	server {
		listen 127.0.0.1:{{.Port}} ssl http2;
		ssl_certificate {{.Cert}};
		ssl_certificate_key {{.Key}};
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_prefer_server_ciphers on;
		ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384;
		ssl_session_cache shared:SSL:10m;

		proxy_http_version 1.1;
		proxy_set_header Connection "";
		proxy_set_header Host {{.MinIO}};

		location /streams/v1/ {
			proxy_pass http://minio/{{.Bucket}}/streams/v1/;
			proxy_cache registry;
			proxy_cache_valid 200 404 {{.CacheValid}}s;
			proxy_cache_lock on;
			proxy_cache_use_stale updating error timeout;
			proxy_cache_background_update on;
			add_header X-Cache-Status $upstream_cache_status;
		}
		location /images/ {
			proxy_pass http://minio/{{.Bucket}}/images/;
{{- if .ImageCache}}
			proxy_cache images;
			proxy_cache_valid 200 365d;
			proxy_cache_lock on;
			proxy_cache_lock_timeout 10m;
			proxy_cache_lock_age 10m;
{{- end}}
			proxy_buffering on;
			proxy_buffers {{.NginxBufNum}} {{.NginxBufSize}};
			add_header X-Cache-Status $upstream_cache_status;
		}
	}
}
`))

// caddyfile is Caddy as a plain TLS reverse proxy to MinIO: the Debian
// package has no response-cache module, so every request, catalog JSON
// included, goes to MinIO. JSON is gzipped (level 1, per response) for
// clients that ask, as nginx does; image files never are. No admin endpoint, no ACME, no redirects, state
// kept under Dir.
var caddyfile = template.Must(template.New("caddy").Parse(`# generated by bench/edgeproxy
{
	admin off
	auto_https off
	storage file_system {{.Dir}}/caddy-data
}

https://127.0.0.1:{{.Port}} {
	bind 127.0.0.1
	tls {{.Cert}} {{.Key}}
	encode {
		gzip 1
	}
	rewrite * /{{.Bucket}}{uri}
	reverse_proxy {{.MinIO}} {
		header_up Host {upstream_hostport}
	}
}
`))

// CacheValid is CatalogTTL in whole seconds (nginx's granularity).
func (s setup) CacheValid() int {
	return max(1, int((s.CatalogTTL+time.Second-1)/time.Second))
}

func writeTemplate(t *template.Template, path string, s setup) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := t.Execute(f, s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// nginxUser is the user directive when running as root (nginx would
// otherwise switch its workers to nobody, who cannot read the temp dir).
func nginxUser() string {
	if os.Geteuid() != 0 {
		return ""
	}
	u, err := user.Current()
	if err != nil {
		return "root"
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return u.Username
	}
	return u.Username + " " + g.Name
}
