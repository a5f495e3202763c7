package appliance

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestCloudTemplateAddsCloudInit(t *testing.T) {
	data, err := os.ReadFile("../../appliances/nginx/image.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cloudTemplate(data)
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
	if len(sets) != 2 || strings.Join(sets[1].Packages, ",") != "cloud-init" {
		t.Errorf("package sets %+v", sets)
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
