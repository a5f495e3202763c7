package terraform

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// module is one Terraform module directory, parsed with hclsyntax.
type module struct {
	dir   string
	files []*hcl.File
}

// loadModules parses every .tf file under this directory, by module
// directory ("." is the root module). A syntax error fails the test.
func loadModules(t *testing.T) map[string]*module {
	t.Helper()
	p := hclparse.NewParser()
	mods := map[string]*module{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".tf") {
			return err
		}
		f, diags := p.ParseHCLFile(path)
		if diags.HasErrors() {
			t.Errorf("%s", diags)
			return nil
		}
		dir := filepath.Dir(path)
		if mods[dir] == nil {
			mods[dir] = &module{dir: dir}
		}
		mods[dir].files = append(mods[dir].files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".", "modules/bucket", "modules/cdn", "modules/publisher"} {
		if mods[want] == nil {
			t.Fatalf("module %s not found", want)
		}
	}
	return mods
}

// blocks returns the top-level blocks of type typ whose labels start with
// labels.
func (m *module) blocks(typ string, labels ...string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, f := range m.files {
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			if b.Type == typ && len(b.Labels) >= len(labels) && slices.Equal(b.Labels[:len(labels)], labels) {
				out = append(out, b)
			}
		}
	}
	return out
}

// block returns the one top-level block of type typ with labels.
func (m *module) block(t *testing.T, typ string, labels ...string) *hclsyntax.Block {
	t.Helper()
	bs := m.blocks(typ, labels...)
	if len(bs) != 1 {
		t.Fatalf("%s: %d %s blocks %q, want 1", m.dir, len(bs), typ, labels)
	}
	return bs[0]
}

// attr returns attribute name of body, failing the test if it is missing.
func attr(t *testing.T, body *hclsyntax.Body, name string) hclsyntax.Expression {
	t.Helper()
	a, ok := body.Attributes[name]
	if !ok {
		t.Fatalf("%s: no attribute %q", body.SrcRange, name)
	}
	return a.Expr
}

// nested returns the nested blocks of type typ in body.
func nested(body *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

// local returns the expression of local value name.
func (m *module) local(t *testing.T, name string) hclsyntax.Expression {
	t.Helper()
	for _, b := range m.blocks("locals") {
		if a, ok := b.Body.Attributes[name]; ok {
			return a.Expr
		}
	}
	t.Fatalf("%s: no local %q", m.dir, name)
	return nil
}

// evalContext knows the module's variable defaults (var.X) and the locals
// that can be computed from literals and those defaults (local.X).
func (m *module) evalContext() *hcl.EvalContext {
	vars := map[string]cty.Value{}
	for _, b := range m.blocks("variable") {
		if a, ok := b.Body.Attributes["default"]; ok {
			if v, diags := a.Expr.Value(nil); !diags.HasErrors() {
				vars[b.Labels[0]] = v
			}
		}
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vars), "local": cty.EmptyObjectVal}}
	locals := map[string]cty.Value{}
	for progress := true; progress; {
		progress = false
		for _, b := range m.blocks("locals") {
			for name, a := range b.Body.Attributes {
				if _, done := locals[name]; done {
					continue
				}
				if v, diags := a.Expr.Value(ctx); !diags.HasErrors() && v.IsWhollyKnown() {
					locals[name], progress = v, true
				}
			}
		}
		ctx.Variables["local"] = cty.ObjectVal(locals)
	}
	return ctx
}

// eval evaluates expr in the module's evalContext.
func (m *module) eval(t *testing.T, expr hcl.Expression) cty.Value {
	t.Helper()
	v, diags := expr.Value(m.evalContext())
	if diags.HasErrors() {
		t.Fatalf("%s: %s", expr.Range(), diags)
	}
	return v
}

// source returns the text of expr as written.
func (m *module) source(expr hcl.Expression) string {
	r := expr.Range()
	for _, f := range m.files {
		if f.Body.(*hclsyntax.Body).SrcRange.Filename == r.Filename {
			return string(f.Bytes[r.Start.Byte:r.End.Byte])
		}
	}
	return ""
}

// traversal returns a plain reference such as "var.catalog_ttl", or "".
func traversal(expr hcl.Expression) string {
	st, ok := expr.(*hclsyntax.ScopeTraversalExpr)
	if !ok {
		return ""
	}
	parts := []string{st.Traversal.RootName()}
	for _, s := range st.Traversal[1:] {
		a, ok := s.(hcl.TraverseAttr)
		if !ok {
			return ""
		}
		parts = append(parts, a.Name)
	}
	return strings.Join(parts, ".")
}

// stringList returns the strings of a string or a list of strings.
func stringList(t *testing.T, v cty.Value) []string {
	t.Helper()
	if v.Type() == cty.String {
		return []string{v.AsString()}
	}
	if !v.CanIterateElements() {
		t.Fatalf("%#v is not a string or a list of strings", v)
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.Type() != cty.String {
			t.Fatalf("%#v is not a list of strings", v)
		}
		out = append(out, e.AsString())
	}
	return out
}

// statement is one IAM policy statement as written.
type statement struct {
	sid      string
	actions  []string
	resource string // source text of Resource
	effect   string
}

// statements returns the policy statements reachable from expr: object
// items whose value is an object with an Action, keyed by Sid, following
// references to locals of the module.
func (m *module) statements(t *testing.T, expr hclsyntax.Expression) []statement {
	t.Helper()
	var out []statement
	seen := map[string]bool{}
	var walk func(hclsyntax.Expression)
	walk = func(e hclsyntax.Expression) {
		hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
			switch n := n.(type) {
			case *hclsyntax.ScopeTraversalExpr:
				if ref := traversal(n); strings.HasPrefix(ref, "local.") && !seen[ref] {
					seen[ref] = true
					walk(m.local(t, strings.TrimPrefix(ref, "local.")))
				}
			case *hclsyntax.ObjectConsExpr:
				for _, item := range n.Items {
					obj, ok := item.ValueExpr.(*hclsyntax.ObjectConsExpr)
					if !ok || objectItem(obj, "Action") == nil {
						continue
					}
					key, diags := item.KeyExpr.Value(nil)
					if diags.HasErrors() {
						t.Fatalf("%s: statement key: %s", item.KeyExpr.Range(), diags)
					}
					s := statement{sid: key.AsString(), actions: stringList(t, m.eval(t, objectItem(obj, "Action")))}
					if r := objectItem(obj, "Resource"); r != nil {
						s.resource = m.source(r)
					}
					if e := objectItem(obj, "Effect"); e != nil {
						s.effect = m.eval(t, e).AsString()
					}
					out = append(out, s)
				}
			}
			return nil
		})
	}
	walk(expr)
	return out
}

// objectItem returns the value of key in an object constructor, or nil.
func objectItem(obj *hclsyntax.ObjectConsExpr, key string) hclsyntax.Expression {
	for _, item := range obj.Items {
		if k, diags := item.KeyExpr.Value(nil); !diags.HasErrors() && k.Type() == cty.String && k.AsString() == key {
			return item.ValueExpr
		}
	}
	return nil
}

// readTree returns the files under this directory whose names end in one
// of suffixes.
func readTree(t *testing.T, suffixes ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, s := range suffixes {
			if strings.HasSuffix(path, s) {
				b, err := os.ReadFile(path)
				out[path] = b
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
