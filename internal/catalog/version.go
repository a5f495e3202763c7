package catalog

import (
	"fmt"
	"time"
)

// versionLayout is the one fixed-width version-key format this registry
// writes: UTC date and time to the second, so that "latest" (the greatest
// key as a string, which is how Incus picks it) is also the newest build.
const versionLayout = "20060102_150405"

// VersionKey returns the version key for an image created at t.
func VersionKey(t time.Time) string {
	return t.UTC().Format(versionLayout)
}

// validVersionKey reports whether Incus will list a version with this key:
// at least 8 characters, starting with a valid YYYYMMDD date.
func validVersionKey(k string) bool {
	if len(k) < 8 {
		return false
	}
	_, err := time.Parse("20060102", k[:8])
	return err == nil
}

// checkVersionKey is validVersionKey with a reason.
func checkVersionKey(k string) error {
	if !validVersionKey(k) {
		return fmt.Errorf("version key %q does not start with a valid YYYYMMDD date: Incus would skip it", k)
	}
	return nil
}
