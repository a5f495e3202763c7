package cloudinit

import (
	"strings"
	"testing"
)

func TestCheckUserData(t *testing.T) {
	good := []string{
		"#cloud-config\nwrite_files:\n- path: /var/www/html/index.html\n  content: hi\n",
		"#cloud-config\n",
		"#cloud-config\n{}",
		"#!/bin/sh\necho hi\n",
	}
	for _, u := range good {
		if err := CheckUserData([]byte(u)); err != nil {
			t.Errorf("%q: %v", u, err)
		}
	}
	bad := map[string]string{
		"#cloud-config\nwrite_files:\n- path: /x\n content: [unclosed\n": "not valid YAML",
		"#cloud-config\n- a\n- b\n":                                      "not a list",
		"write_files: []\n":                                              "cloud-init ignores it",
		"  \n":                                                           "empty",
	}
	for u, want := range bad {
		err := CheckUserData([]byte(u))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: err %v, want one line containing %q", u, err, want)
		}
	}
}
