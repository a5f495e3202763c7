// Package cdntest is a fake CloudFront API for tests: an HTTP server that
// speaks just enough of the REST-XML CreateInvalidation call for the SDK,
// records what it was asked, and can refuse with AccessDenied.
package cdntest

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Invalidation is one CreateInvalidation request the server accepted.
type Invalidation struct {
	DistributionID  string
	CallerReference string
	Paths           []string
}

// Server is a running fake. Only the distribution named Distribution
// exists; any other ID gets NoSuchDistribution.
type Server struct {
	// URL is the endpoint (AWS_ENDPOINT_URL_CLOUDFRONT).
	URL string
	// Distribution is the ID of the one distribution.
	Distribution string

	mu            sync.Mutex
	deny          bool
	invalidations []Invalidation
	problems      []string
}

// Start starts a fake with one distribution, stopped when the test ends.
// Requests that are not well-formed, signed CreateInvalidation calls fail
// the test.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{Distribution: "E2EXAMPLE0CDN"}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = srv.URL
	t.Cleanup(func() {
		srv.Close()
		for _, p := range s.Problems() {
			t.Errorf("cdntest: %s", p)
		}
	})
	return s
}

// SetDeny makes every later request fail with 403 AccessDenied (or not).
func (s *Server) SetDeny(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = deny
}

// Invalidations returns the accepted requests, oldest first.
func (s *Server) Invalidations() []Invalidation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Invalidation(nil), s.invalidations...)
}

// Problems returns what was wrong with the requests received.
func (s *Server) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.problems...)
}

// batch is the request body.
type batch struct {
	XMLName         xml.Name `xml:"InvalidationBatch"`
	CallerReference string   `xml:"CallerReference"`
	Quantity        int      `xml:"Paths>Quantity"`
	Paths           []string `xml:"Paths>Items>Path"`
}

const apiPrefix = "/2020-05-31/distribution/"

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, apiPrefix)
	id, ok2 := strings.CutSuffix(id, "/invalidation")
	if r.Method != http.MethodPost || !ok || !ok2 {
		s.problem("unexpected request %s %s", r.Method, r.URL.Path)
		writeError(w, http.StatusBadRequest, "InvalidArgument", "not a CreateInvalidation call")
		return
	}
	// SigV4 for the service "cloudfront", in its one API region.
	if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || !strings.Contains(auth, "/us-east-1/cloudfront/aws4_request") {
		s.problem("request not signed for cloudfront in us-east-1: %q", auth)
	}
	body, err := io.ReadAll(r.Body)
	var b batch
	if err == nil {
		err = xml.Unmarshal(body, &b)
	}
	if err != nil || b.CallerReference == "" || b.Quantity != len(b.Paths) || len(b.Paths) == 0 {
		s.problem("bad InvalidationBatch (%v): %s", err, body)
		writeError(w, http.StatusBadRequest, "InvalidArgument", "bad InvalidationBatch")
		return
	}
	s.mu.Lock()
	deny := s.deny
	if !deny && id == s.Distribution {
		s.invalidations = append(s.invalidations, Invalidation{DistributionID: id, CallerReference: b.CallerReference, Paths: b.Paths})
	}
	n := len(s.invalidations)
	s.mu.Unlock()
	switch {
	case deny:
		writeError(w, http.StatusForbidden, "AccessDenied", fmt.Sprintf("User: arn:aws:sts::123456789012:assumed-role/registry-publisher/ci is not authorized to perform: cloudfront:CreateInvalidation on resource: arn:aws:cloudfront::123456789012:distribution/%s", id))
		return
	case id != s.Distribution:
		writeError(w, http.StatusNotFound, "NoSuchDistribution", "The specified distribution does not exist.")
		return
	}
	invID := fmt.Sprintf("I%012d", n)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Location", "https://cloudfront.amazonaws.com"+apiPrefix+id+"/invalidation/"+invID)
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Invalidation xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Id>%s</Id><Status>InProgress</Status><CreateTime>2026-01-01T00:00:00Z</CreateTime></Invalidation>`, invID)
}

func (s *Server) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

// writeError writes a CloudFront error response.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0"?>
<ErrorResponse xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>cdntest-request</RequestId></ErrorResponse>`, code, xmlEscape(msg))
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
