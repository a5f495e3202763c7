// Package terraform holds the tests of the Terraform configuration in this
// directory. The static tests here parse the .tf files with the HCL
// library and always run; the tests that run terraform itself (and
// MinIO) run only with REGISTRY_TERRAFORM=1, as `make test-terraform`
// sets.
package terraform

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// Every .tf and .tftest.hcl file is canonically formatted (what
// `terraform fmt` writes).
func TestHCLFormatted(t *testing.T) {
	files := readTree(t, ".tf", ".tftest.hcl")
	if len(files) < 10 {
		t.Fatalf("only %d Terraform files found", len(files))
	}
	for path, src := range files {
		if got := hclwrite.Format(src); !bytes.Equal(got, src) {
			t.Errorf("%s is not formatted: run terraform fmt -recursive terraform/", path)
		}
	}
}

// Every module pins the AWS provider to the range the code is written for.
func TestHCLProviderConstraint(t *testing.T) {
	for dir, m := range loadModules(t) {
		var found bool
		for _, tf := range m.blocks("terraform") {
			for _, rp := range nested(tf.Body, "required_providers") {
				v := m.eval(t, attr(t, rp.Body, "aws"))
				src, ver := v.GetAttr("source").AsString(), v.GetAttr("version").AsString()
				if src != "hashicorp/aws" || ver != ">= 5.83, < 7" {
					t.Errorf("%s: aws provider %s %q, want hashicorp/aws \">= 5.83, < 7\"", dir, src, ver)
				}
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no required_providers for aws", dir)
		}
	}
}

// The bucket is private: all four public access blocks on, ACLs off.
func TestHCLBucketPrivate(t *testing.T) {
	m := loadModules(t)["modules/bucket"]
	pab := m.block(t, "resource", "aws_s3_bucket_public_access_block", "this")
	for _, name := range []string{"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"} {
		if v := m.eval(t, attr(t, pab.Body, name)); !v.RawEquals(cty.True) {
			t.Errorf("public access block %s = %#v, want true", name, v)
		}
	}
	own := m.block(t, "resource", "aws_s3_bucket_ownership_controls", "this")
	if v := m.eval(t, attr(t, nested(own.Body, "rule")[0].Body, "object_ownership")); v.AsString() != "BucketOwnerEnforced" {
		t.Errorf("object_ownership = %s, want BucketOwnerEnforced", v.AsString())
	}
}

// The catalog is cached 60 s by default, image files for a year; the
// cache policies take their TTLs from those variables.
func TestHCLCacheTTLs(t *testing.T) {
	mods := loadModules(t)
	for _, dir := range []string{".", "modules/cdn"} {
		m := mods[dir]
		vars := m.evalContext().Variables["var"]
		if v := vars.GetAttr("catalog_ttl"); !v.RawEquals(cty.NumberIntVal(60)) {
			t.Errorf("%s: catalog_ttl default %#v, want 60", dir, v)
		}
		if v := vars.GetAttr("images_ttl"); v.LessThan(cty.NumberIntVal(365 * 86400)).True() {
			t.Errorf("%s: images_ttl default %#v, want a year or more", dir, v)
		}
	}
	cdn := mods["modules/cdn"]
	images := cdn.block(t, "resource", "aws_cloudfront_cache_policy", "images")
	for _, name := range []string{"min_ttl", "default_ttl", "max_ttl"} {
		if ref := traversal(attr(t, images.Body, name)); ref != "var.images_ttl" {
			t.Errorf("images cache policy %s = %q, want var.images_ttl", name, ref)
		}
	}
	catalog := cdn.block(t, "resource", "aws_cloudfront_cache_policy", "catalog")
	for _, name := range []string{"default_ttl", "max_ttl"} {
		if ref := traversal(attr(t, catalog.Body, name)); ref != "var.catalog_ttl" {
			t.Errorf("catalog cache policy %s = %q, want var.catalog_ttl", name, ref)
		}
	}
	if v := cdn.eval(t, attr(t, catalog.Body, "min_ttl")); !v.RawEquals(cty.Zero) {
		t.Errorf("catalog cache policy min_ttl = %#v, want 0", v)
	}
	root := mods["."].block(t, "module", "cdn")
	for _, name := range []string{"catalog_ttl", "images_ttl"} {
		if ref := traversal(attr(t, root.Body, name)); ref != "var."+name {
			t.Errorf("root module passes %s = %q to the cdn module, want var.%s", name, ref, name)
		}
	}
}

// Every cache behaviour: HTTPS for viewers, GET and HEAD only; images/*
// with the long policy and no compression, streams/v1/* with the short
// policy, compressed.
func TestHCLBehaviours(t *testing.T) {
	m := loadModules(t)["modules/cdn"]
	dist := m.block(t, "resource", "aws_cloudfront_distribution", "this")
	behaviours := append(nested(dist.Body, "default_cache_behavior"), nested(dist.Body, "ordered_cache_behavior")...)
	if len(behaviours) != 3 {
		t.Fatalf("%d cache behaviours, want 3", len(behaviours))
	}
	secure := []string{"https-only", "redirect-to-https"}
	for _, b := range behaviours {
		if v := m.eval(t, attr(t, b.Body, "viewer_protocol_policy")).AsString(); !slices.Contains(secure, v) {
			t.Errorf("%s: viewer_protocol_policy %q", b.Range(), v)
		}
		for _, name := range []string{"allowed_methods", "cached_methods"} {
			if got := stringList(t, m.eval(t, attr(t, b.Body, name))); !slices.Equal(got, []string{"GET", "HEAD"}) {
				t.Errorf("%s: %s %q, want GET, HEAD", b.Range(), name, got)
			}
		}
	}
	// The variable cannot be set to anything else.
	v := m.block(t, "variable", "viewer_protocol_policy")
	if cond := m.source(attr(t, nested(v.Body, "validation")[0].Body, "condition")); cond != `contains(["redirect-to-https", "https-only"], var.viewer_protocol_policy)` {
		t.Errorf("viewer_protocol_policy validation %q", cond)
	}
	for path, src := range readTree(t, ".tf") {
		if bytes.Contains(src, []byte("allow-all")) {
			t.Errorf("%s mentions allow-all", path)
		}
	}
	want := map[string]struct {
		policy   string
		compress bool
	}{
		`"${local.prefix}images/*"`:     {"aws_cloudfront_cache_policy.images.id", false},
		`"${local.prefix}streams/v1/*"`: {"aws_cloudfront_cache_policy.catalog.id", true},
	}
	for _, b := range nested(dist.Body, "ordered_cache_behavior") {
		pattern := m.source(attr(t, b.Body, "path_pattern"))
		w, ok := want[pattern]
		if !ok {
			t.Errorf("unexpected path_pattern %s", pattern)
			continue
		}
		delete(want, pattern)
		if ref := traversal(attr(t, b.Body, "cache_policy_id")); ref != w.policy {
			t.Errorf("%s: cache_policy_id %s, want %s", pattern, ref, w.policy)
		}
		if c := m.eval(t, attr(t, b.Body, "compress")); !c.RawEquals(cty.BoolVal(w.compress)) {
			t.Errorf("%s: compress %#v, want %v", pattern, c, w.compress)
		}
	}
	for p := range want {
		t.Errorf("no behaviour for %s", p)
	}
}

// The publisher may delete nothing but its probe objects: no
// s3:DeleteObject (or wider) on images/* or streams/*. The pruner deletes
// image files only.
func TestHCLPublisherCannotDelete(t *testing.T) {
	m := loadModules(t)["modules/publisher"]
	deletes := regexp.MustCompile(`^(\*|s3:\*|s3:Delete.*)$`)
	policy := func(name string) []statement {
		expr := attr(t, m.block(t, "resource", "aws_iam_policy", name).Body, "policy")
		if call, ok := expr.(*hclsyntax.FunctionCallExpr); !ok || call.Name != "jsonencode" {
			t.Fatalf("aws_iam_policy.%s: policy is not built with jsonencode()", name)
		}
		return m.statements(t, expr)
	}

	pub := policy("publisher")
	var puts, probeDeletes int
	for _, s := range pub {
		for _, a := range s.actions {
			if deletes.MatchString(a) {
				if strings.Contains(s.resource, "images/") || strings.Contains(s.resource, "streams/") || !strings.Contains(s.resource, "registry-probe/") {
					t.Errorf("publisher statement %s allows %s on %s", s.sid, a, s.resource)
				}
				probeDeletes++
			}
			if a == "s3:PutObject" && strings.Contains(s.resource, "images/*") && strings.Contains(s.resource, "streams/v1/*") {
				puts++
			}
			if a == "cloudfront:*" || a == "*" || a == "s3:*" {
				t.Errorf("publisher statement %s: wildcard action %s", s.sid, a)
			}
		}
	}
	if puts != 1 || probeDeletes != 1 {
		t.Errorf("publisher policy: %d PutObject statements on images/* and streams/v1/*, %d probe deletes; want 1 and 1 (statements found: %+v)", puts, probeDeletes, pub)
	}

	var imageDeletes int
	for _, s := range policy("prune") {
		for _, a := range s.actions {
			if deletes.MatchString(a) {
				if !strings.HasSuffix(s.resource, `images/*"`) {
					t.Errorf("prune statement %s allows %s on %s", s.sid, a, s.resource)
				}
				imageDeletes++
			}
		}
	}
	if imageDeletes != 1 {
		t.Errorf("prune policy: %d delete statements, want 1 (images/*)", imageDeletes)
	}
}

// Every policy document is built with jsonencode(), so that the tests can
// read it (and no heredoc JSON drifts out of shape).
func TestHCLPoliciesUseJSONEncode(t *testing.T) {
	for dir, m := range loadModules(t) {
		for _, b := range m.blocks("resource") {
			for _, name := range []string{"policy", "assume_role_policy"} {
				a, ok := b.Body.Attributes[name]
				if !ok {
					continue
				}
				call, isCall := a.Expr.(*hclsyntax.FunctionCallExpr)
				ref := traversal(a.Expr)
				if !(isCall && call.Name == "jsonencode") && !strings.HasPrefix(ref, "local.") {
					t.Errorf("%s: %s.%s.%s is neither jsonencode() nor a local", dir, b.Labels[0], b.Labels[1], name)
				}
			}
		}
	}
}
