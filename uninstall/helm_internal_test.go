package uninstall

import (
	"errors"
	"testing"
)

// Helm's uninstall reports a record already gone as text; both forms seen
// (1.22 and 1.24 runs of the 3.4.1 teardown) are recognised, and nothing
// else: a failed resource delete is still a failure.
func TestPurgeRaced(t *testing.T) {
	for msg, want := range map[string]bool{
		"uninstallation completed with 1 error(s): uninstall: Failed to purge the release: release: not found":                                true,
		`uninstallation completed with 1 error(s): uninstall: Failed to purge the release: secrets "sh.helm.release.v1.ks-core.v1" not found`: true,
		"uninstallation completed with 2 error(s): failed to delete release: x; uninstall: Failed to purge the release: release: not found":   false,
		`uninstallation completed with 1 error(s): failed to delete deployments "ks-apiserver": not found`:                                    false,
		"context deadline exceeded": false,
	} {
		if got := purgeRaced(errors.New(msg)); got != want {
			t.Errorf("%q: %v, want %v", msg, got, want)
		}
	}
}
