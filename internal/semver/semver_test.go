package semver

import (
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	// Ascending, as semver.org orders them.
	order := []string{"0.9.9", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"}
	for i := range order {
		for j := range order {
			a, errA := Parse(order[i])
			b, errB := Parse(order[j])
			if errA != nil || errB != nil {
				t.Fatal(errA, errB)
			}
			want := cmpInt(i, j)
			if got := Compare(a, b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	a, _ := Parse("1.0.0+build.1")
	b, _ := Parse("1.0.0+build.2")
	if Compare(a, b) != 0 || a.String() != "1.0.0+build.1" {
		t.Errorf("build metadata: Compare = %d, String = %s", Compare(a, b), a)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, s := range []string{"", "1", "1.2", "01.2.3", "1.2.3-", "1.2.3+", "v1.2.3", "1.2.3.4", "1.2.3-a..b"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}

func TestConstraint(t *testing.T) {
	cases := []struct {
		c        string
		yes, not []string
	}{
		{">=1.1, <2", []string{"1.1.0", "1.9.9", "1.1.0+b"}, []string{"1.0.9", "2.0.0", "1.1.0-rc.1", "2.0.0-rc.1"}},
		{">= 1.0 ,< 2 ", []string{"1.0.0", "1.5.0"}, []string{"0.9.0", "2.0.0"}},
		{"=1.2", []string{"1.2.0"}, []string{"1.2.1", "1.1.0"}},
		{"!=1.2.3", []string{"1.2.2", "1.2.4"}, []string{"1.2.3"}},
		{">1", []string{"1.0.1", "2.0.0"}, []string{"1.0.0", "0.9.0"}},
		{"<=1.4.2", []string{"1.4.2", "0.1.0"}, []string{"1.4.3"}},
		{"<1", []string{"0.99.3"}, []string{"1.0.0", "0.9.0-rc.1"}},
		{">=1.0, <1.1", []string{"1.0.7"}, []string{"1.1.0"}},
	}
	for _, tc := range cases {
		c, err := ParseConstraint(tc.c)
		if err != nil {
			t.Fatalf("%q: %v", tc.c, err)
		}
		if c.String() != tc.c {
			t.Errorf("String() = %q, want %q", c, tc.c)
		}
		for _, s := range tc.yes {
			if v, _ := Parse(s); !c.Allows(v) {
				t.Errorf("%q refuses %s", tc.c, s)
			}
		}
		for _, s := range tc.not {
			if v, _ := Parse(s); c.Allows(v) {
				t.Errorf("%q allows %s", tc.c, s)
			}
		}
	}
}

func TestParseConstraintRefuses(t *testing.T) {
	for s, want := range map[string]string{
		"":               "empty",
		"1.0":            "not OPERATOR VERSION",
		">=1.0,":         "not OPERATOR VERSION",
		"~1.2":           "not OPERATOR VERSION",
		">=1.2.3.4":      "not OPERATOR VERSION",
		">=v1":           "not OPERATOR VERSION",
		">=1.0-rc.1":     "not OPERATOR VERSION",
		">=2, <1":        "no version satisfies it",
		"=1, =2":         "no version satisfies it",
		"<0":             "no version satisfies it",
		">1.0.0, <1.0.1": "no version satisfies it",
	} {
		_, err := ParseConstraint(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConstraint(%q) = %v, want an error saying %q", s, err, want)
		}
	}
}

func FuzzConstraint(f *testing.F) {
	f.Add(">=1.1, <2", "1.5.0")
	f.Add("!=1.2.3", "1.2.3-rc.1")
	f.Fuzz(func(t *testing.T, cs, vs string) {
		c, err := ParseConstraint(cs)
		if err != nil {
			return
		}
		if v, err := Parse(vs); err == nil {
			c.Allows(v) // never panics
		}
	})
}
