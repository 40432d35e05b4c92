package cli

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"
)

func versionCommand() *cli.Command {
	var output string
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Flags: []cli.Flag{outputFlag(&output)},
		Action: func(c *cli.Context) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(c.App.Writer, map[string]string{"version": version, "commit": commit, "go": runtime.Version()})
			}
			fmt.Fprintf(c.App.Writer, "ks-clean %s (%s) %s\n", version, commit, runtime.Version())
			return nil
		},
	}
}
