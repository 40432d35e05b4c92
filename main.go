// Command ks-clean finds and safely removes KubeSphere 3.x/4.x and KubeFed
// from a Kubernetes cluster without losing users' data. Everything it does
// lives in library packages; the command line is internal/cli.
package main

import (
	"os"

	"github.com/ks-clean/ks-clean/internal/cli"
)

func main() { os.Exit(cli.Main()) }
