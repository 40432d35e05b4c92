// Command ks-devcluster runs a local control plane seeded with one of the
// test scenarios, for the demo and for trying ks-clean by hand. It writes a
// kubeconfig, prints "ready" and runs until interrupted, then stops every
// process it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ks-devcluster:", err)
		os.Exit(1)
	}
}

func run() error {
	name := flag.String("scenario", "incident", "scenario to seed")
	dir := flag.String("dir", ".demo", "working directory (certificates, logs, kubeconfig)")
	workspaces := flag.Int("workspaces", 2, "workspaces to seed")
	perWS := flag.Int("namespaces", 2, "user namespaces per workspace")
	flag.Parse()

	sc, err := fixture.ScenarioByName(*name)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	_ = os.RemoveAll(abs) // a previous run's etcd data would clash with a new seed
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: abs, NoControllerManager: true})
	if err != nil {
		return err
	}
	defer cp.Stop()
	s, err := fixture.NewSeeder(cp.Config)
	if err != nil {
		return err
	}
	if err := sc.Seed(ctx, s, fixture.Options{Workspaces: *workspaces, NamespacesPerWorkspace: *perWS}); err != nil {
		return fmt.Errorf("seed %s: %w", sc.Name, err)
	}
	if err := cp.StartControllerManager(ctx); err != nil {
		return err
	}
	kubeconfig := filepath.Join(abs, "kubeconfig")
	if err := writeKubeconfig(cp.AdminKubeconfig, kubeconfig, sc.Name); err != nil {
		return err
	}
	fmt.Printf("seeded %s in %s: %d KubeSphere/KubeFed objects, %d user objects\n",
		sc.Name, time.Since(start).Round(100*time.Millisecond), len(s.Seeded.Footprint), len(s.Seeded.Protected))
	fmt.Printf("ready: kubeconfig=%s\n", kubeconfig)
	<-ctx.Done()
	fmt.Println("stopping control plane")
	return nil
}

// writeKubeconfig copies the admin kubeconfig with its context named after
// the scenario, as a user's kubeconfig would name a cluster.
func writeKubeconfig(from, to, contextName string) error {
	cfg, err := clientcmd.LoadFromFile(from)
	if err != nil {
		return err
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	cfg.Contexts = map[string]*clientcmdapi.Context{contextName: ctx}
	cfg.CurrentContext = contextName
	return clientcmd.WriteToFile(*cfg, to)
}
