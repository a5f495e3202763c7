package edgeproxy

import "os"

// defaultHostnames are the names a self-signed certificate covers when
// none are given: this machine's name and the loopback addresses.
func defaultHostnames() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		hosts = append([]string{h}, hosts...)
	}
	return hosts
}
