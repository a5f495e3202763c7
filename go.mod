module github.com/incus-appliance/registry

go 1.26.0

require (
	github.com/alecthomas/kong v1.17.0
	github.com/ulikunitz/xz v0.5.17
	golang.org/x/sys v0.50.0
	gopkg.in/yaml.v3 v3.0.1
)

require golang.org/x/term v0.48.0
