package relations

import "slices"

// Declared is what an appliance declares of its relations.
type Declared struct {
	Name     string
	Provides []Provide
	Requires []Require
}

// Order returns the indexes of apps with every appliance after the
// appliances of apps providing an interface it requires, otherwise in
// the given order: publishing or releasing them in that order puts each
// provider out before its consumers. Appliances requiring each other (a
// cycle) are placed as far as the cycle allows.
func Order(apps []Declared) []int {
	var out []int
	placed := make([]bool, len(apps))
	visiting := make([]bool, len(apps))
	var visit func(i int)
	visit = func(i int) {
		if placed[i] || visiting[i] {
			return
		}
		visiting[i] = true
		for _, r := range apps[i].Requires {
			for j, p := range apps {
				if j != i && slices.ContainsFunc(p.Provides, func(p Provide) bool { return p.Interface == r.Interface }) {
					visit(j)
				}
			}
		}
		visiting[i] = false
		placed[i] = true
		out = append(out, i)
	}
	for i := range apps {
		visit(i)
	}
	return out
}
