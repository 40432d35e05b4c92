package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/ks-clean/ks-clean/api"
)

// versionInfo is `ks-clean version -o json`.
type versionInfo struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Version    string `json:"version"`
	Commit     string `json:"commit"`
	Modified   bool   `json:"modified,omitempty"`
	Go         string `json:"go"`
}

// buildVersion is the version and commit set by -ldflags (make), else
// what the Go toolchain recorded: the module version (`go install
// …@v1.2.3`, or a pseudo-version built from a checkout) and the VCS
// revision.
func buildVersion() versionInfo {
	v := versionInfo{APIVersion: api.APIVersion, Kind: "Version", Version: version, Commit: commit, Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if v.Commit == "unknown" {
				v.Commit = s.Value
				if len(v.Commit) > 12 {
					v.Commit = v.Commit[:12]
				}
			}
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func versionCommand() *cli.Command {
	var output string
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Description: `Prints the version: set by 'make build', else the module version and VCS
revision Go recorded ('go install …@v1.2.3', or a build from a checkout).

Examples:
   ks-clean version
   ks-clean version -o json | jq -r .commit`,
		Flags: []cli.Flag{outputFlag(&output)},
		Action: func(c *cli.Context) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			v := buildVersion()
			return emit(c, output, v, func(w io.Writer) {
				dirty := ""
				if v.Modified {
					dirty = ", modified"
				}
				fmt.Fprintf(w, "ks-clean %s (%s%s) %s\n", v.Version, v.Commit, dirty, v.Go)
			})
		},
	}
}
