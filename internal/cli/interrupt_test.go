package cli

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Ctrl-C ends a read-only command at once with exit 130, even while it
// waits on a server that accepted the connection and never answers (a
// request stuck there may not notice its context for many seconds).
func TestInterruptExits130(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, answer nothing
		}
	}()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters: [{name: dead, cluster: {server: "https://` + ln.Addr().String() + `", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: dead, context: {cluster: dead, user: u}}]
current-context: dead
`
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"scan", "plan"} {
		t.Run(cmd, func(t *testing.T) {
			c := ksClean("--kubeconfig", kc, "--request-timeout", "60", cmd)
			var errb strings.Builder
			c.Stderr = &errb
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second) // connected, waiting for an answer
			sent := time.Now()
			if err := c.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			err := c.Wait()
			took := time.Since(sent)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 130 || !strings.Contains(errb.String(), "interrupted") {
				t.Fatalf("%s after Ctrl-C: %v, stderr %q; want exit 130 and 'interrupted'", cmd, err, errb.String())
			}
			// Generous for a loaded machine; the point is not waiting on
			// the 60 s request timeout.
			if took > 10*time.Second {
				t.Fatalf("%s took %s to end after Ctrl-C", cmd, took)
			}
		})
	}
}
