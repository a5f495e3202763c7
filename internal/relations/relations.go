// Package relations is how appliances need each other, as Juju's charms
// do: an appliance provides named interfaces and requires relations,
// each to an appliance providing an interface. It holds what
// appliance.yaml declares (Provide, Require), where the relation hooks
// and state live inside an image, how the declarations are written into
// the catalog's custom metadata and the image's properties (encode.go),
// the order that puts providers first (Order), and the rules that keep a
// registry installable the way apt keeps an archive installable
// (rules.go): every published consumer has a published provider for each
// of its relations. Pure: no I/O.
//
// Each interface is documented once, in appliances/_interfaces/NAME.yaml:
// the fields a provider hands over and what each side does with them. A
// provider ships the executable /usr/lib/appliance/provides/INTERFACE:
// run with a consumer's name, it makes that consumer's credentials
// (idempotently) and prints the fields as one JSON object. A consumer
// ships /usr/lib/appliance/requires/NAME: it reads that object on stdin,
// configures its service, restarts it and records what it received in
// /var/lib/appliance/relations/NAME.json. Wiring two instances is one
// pipe:
//
//	incus exec db -- /usr/lib/appliance/provides/postgresql rss |
//	  incus exec rss -- /usr/lib/appliance/requires/db
package relations

import (
	"fmt"
	"regexp"

	"github.com/incus-appliance/registry/internal/semver"
)

// Where relations live inside an appliance's image.
const (
	// ProvidesHookDir and RequiresHookDir hold the hooks.
	ProvidesHookDir = "/usr/lib/appliance/provides"
	RequiresHookDir = "/usr/lib/appliance/requires"
	// StateDir holds what each consumer hook received: NAME.json, or
	// NAME/PROVIDER.json for a multiple relation.
	StateDir = "/var/lib/appliance/relations"
	// HealthScript is the health check of an appliance taking part in
	// relations: its healthcheck runs it, and so do a stack's gate and
	// the Ansible role for an instance whose definition they do not hold.
	HealthScript = "/usr/lib/appliance/health"
)

// Provide is one interface an appliance provides (appliance.yaml
// provides:).
type Provide struct {
	Interface string `yaml:"interface" json:"interface"`
	// Port is the declared TCP port the interface is served on (0: none
	// named).
	Port int `yaml:"port" json:"port,omitempty"`
}

// Hook is the provider's executable in the image.
func (p Provide) Hook() string { return ProvidesHookDir + "/" + p.Interface }

// Require is one relation an appliance needs (appliance.yaml requires:).
type Require struct {
	// Name is the appliance's own name for the relation (its hook's name).
	Name      string `yaml:"name" json:"name"`
	Interface string `yaml:"interface" json:"interface"`
	// Version, if set, constrains the provider appliance's version
	// (semver.ParseConstraint: ">=1.1, <2").
	Version string `yaml:"version" json:"version,omitempty"`
	// Multiple: the relation takes any number of providers, none
	// included (prometheus' scrape targets); otherwise exactly one.
	Multiple bool `yaml:"multiple" json:"multiple,omitempty"`
}

// Hook is the consumer's executable in the image.
func (r Require) Hook() string { return RequiresHookDir + "/" + r.Name }

// State is where the consumer's hook records a single relation's
// provider once wired (a multiple relation: the folder of one file per
// provider).
func (r Require) State() string {
	if r.Multiple {
		return StateDir + "/" + r.Name
	}
	return StateDir + "/" + r.Name + ".json"
}

// Constraint is the parsed Version; ok is false when there is none (any
// version of a provider will do).
func (r Require) Constraint() (c semver.Constraint, ok bool, err error) {
	if r.Version == "" {
		return semver.Constraint{}, false, nil
	}
	c, err = semver.ParseConstraint(r.Version)
	return c, err == nil, err
}

// Wants says what the relation needs: "postgresql >=1.1, <2", "http".
func (r Require) Wants() string {
	if r.Version == "" {
		return r.Interface
	}
	return r.Interface + " " + r.Version
}

// String names the relation and what it needs: "db (postgresql >=1.1,
// <2)".
func (r Require) String() string { return r.Name + " (" + r.Wants() + ")" }

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// CheckName checks an interface or relation name: a lowercase name
// (a-z, 0-9, -), as the hooks are files named after them.
func CheckName(kind, name string) error {
	if !nameRe.MatchString(name) {
		return fmt.Errorf("%s %q must be a lowercase name (a-z, 0-9, -)", kind, name)
	}
	return nil
}
