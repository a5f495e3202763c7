package appliance

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const variantYAML = validYAML + "variants: [default, cloud]\ntypes: [container, vm]\n"

func TestVariantsAndTypesAreChecked(t *testing.T) {
	for yml, want := range map[string]string{
		validYAML + "variants: [default, fancy]\n": `variants: unknown "fancy"`,
		validYAML + "variants: [cloud, cloud]\n":   `"cloud" is listed twice`,
		validYAML + "types: [vm]\n":                "list container too",
		validYAML + "types: [container, lxc]\n":    `types: unknown "lxc"`,
	} {
		_, err := Load(writeAppliance(t, yml), "web")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", yml, err, want)
		}
	}
	a, err := Load(writeAppliance(t, variantYAML), "web")
	if err != nil {
		t.Fatal(err)
	}
	if !a.HasVM() || strings.Join(a.VariantList(), ",") != "default,cloud" {
		t.Errorf("variants %v, vm %v", a.VariantList(), a.HasVM())
	}
}

// The cloud variant's template is the merged one (base + image.yaml) with
// cloud-init's package set last and the four NoCloud seed templates.
func TestCloudTemplateAddsCloudInit(t *testing.T) {
	a, err := Load("../../appliances", "nginx")
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.VariantTemplate(variantCloud)
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Image    map[string]any `yaml:"image"`
		Packages struct {
			Sets []struct {
				Packages []string `yaml:"packages"`
			} `yaml:"sets"`
		} `yaml:"packages"`
		Files []struct {
			Name, Path, Generator string
		} `yaml:"files"`
	}
	if err := yaml.Unmarshal(out, &tmpl); err != nil {
		t.Fatal(err)
	}
	if tmpl.Image["distribution"] != "debian" {
		t.Errorf("image section lost: %v", tmpl.Image)
	}
	sets := tmpl.Packages.Sets
	if len(sets) != 3 || !strings.Contains(strings.Join(sets[1].Packages, ","), "nginx-light") || strings.Join(sets[2].Packages, ",") != "cloud-init" {
		t.Errorf("package sets %+v, want the base's, nginx's, then cloud-init", sets)
	}
	if !strings.Contains(string(out), "/etc/systemd/network/eth0.network") || !strings.Contains(string(out), "/etc/nginx/sites-available/default") {
		t.Errorf("the base's or nginx's files are missing:\n%s", out)
	}
	var seeds []string
	for _, f := range tmpl.Files {
		if f.Generator == "cloud-init" {
			seeds = append(seeds, f.Name)
		}
	}
	if strings.Join(seeds, ",") != "meta-data,network-config,user-data,vendor-data" {
		t.Errorf("cloud-init files %v", seeds)
	}
	if os.Getenv("SHOW") != "" {
		t.Log(string(out))
	}
}
