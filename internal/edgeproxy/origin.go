package edgeproxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/incus-appliance/registry/internal/store"
)

// Origin is where the proxy reads the registry from: a store.Store (a
// local registry folder or an S3 bucket, read with signed requests) or an
// HTTP(S) origin. Errors use the store sentinels.
type Origin interface {
	Get(ctx context.Context, key string) (io.ReadCloser, store.ObjectInfo, error)
	Stat(ctx context.Context, key string) (store.ObjectInfo, error)
}

// httpOrigin reads a registry served by a plain HTTP(S) server. It
// implements Origin and store.RangeReader.
type httpOrigin struct {
	base   *url.URL
	client *http.Client
}

// NewHTTPOrigin returns an Origin reading from base (http:// or https://).
func NewHTTPOrigin(base string, client *http.Client) (Origin, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("origin %q: want an http:// or https:// URL", base)
	}
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		tr.DisableCompression = true // bytes are served as stored
		client = &http.Client{Transport: tr, Timeout: 0}
	}
	// A redirect is never followed: an origin (or whoever took over its
	// name) must not point the proxy at other bytes to serve as immutable
	// image files. The 3xx answer becomes a 502.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &httpOrigin{base: u, client: &c}, nil
}

func (o *httpOrigin) do(ctx context.Context, method, key string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, o.base.String()+"/"+key, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, key, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden:
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %w", method, key, store.ErrNotFound)
	case resp.StatusCode == http.StatusPreconditionFailed:
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %w", method, key, store.ErrPreconditionFailed)
	case resp.StatusCode >= 300:
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: origin answered %s", method, key, resp.Status)
	}
	return resp, nil
}

func infoOf(key string, resp *http.Response) store.ObjectInfo {
	mod, _ := http.ParseTime(resp.Header.Get("Last-Modified"))
	return store.ObjectInfo{Key: key, Size: resp.ContentLength, ETag: resp.Header.Get("ETag"), ModTime: mod}
}

func (o *httpOrigin) Get(ctx context.Context, key string) (io.ReadCloser, store.ObjectInfo, error) {
	resp, err := o.do(ctx, http.MethodGet, key, nil)
	if err != nil {
		return nil, store.ObjectInfo{}, err
	}
	return resp.Body, infoOf(key, resp), nil
}

func (o *httpOrigin) Stat(ctx context.Context, key string) (store.ObjectInfo, error) {
	resp, err := o.do(ctx, http.MethodHead, key, nil)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	resp.Body.Close()
	return infoOf(key, resp), nil
}

func (o *httpOrigin) GetRange(ctx context.Context, key string, offset, length int64, etag string) (io.ReadCloser, error) {
	h := http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)}}
	if etag != "" {
		h.Set("If-Match", etag)
	}
	resp, err := o.do(ctx, http.MethodGet, key, h)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusPartialContent {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: origin ignored the Range request (%s)", key, resp.Status)
	}
	return resp.Body, nil
}
