//go:build !windows

package lease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/test/controlplane"
)

// Who may be taken over before the Lease expires: only a dead process of
// this machine and user. A holder of another machine that has this one's
// host name (and a pid not running here), an older ks-clean's holder, and a
// live local process are all waited for.
func TestTakeoverOnlyOfDeadLocalHolders(t *testing.T) {
	cp := controlplane.StartT(t, controlplane.Options{NoControllerManager: true})
	kc := kubernetes.NewForConfigOrDie(cp.Config)
	ctx := context.Background()
	host, _ := os.Hostname()
	dead := deadPID(t)
	dir, err := localDir()
	if err != nil {
		t.Fatal(err)
	}

	// A live local holder: its mark is locked (here, by this test).
	live, err := os.OpenFile(filepath.Join(dir, "live0000test"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(live.Name())
	defer live.Close()
	if err := syscall.Flock(int(live.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	// A dead local holder: its mark is there, unlocked.
	if err := os.WriteFile(filepath.Join(dir, "dead0000test"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, holder string
		takeover     bool
	}{
		{"another machine with this host name", fmt.Sprintf("%s/%d/0123456789abcdef", host, dead), false},
		{"an older ks-clean's holder", fmt.Sprintf("%s/%d", host, dead), false},
		{"a live process of this machine", fmt.Sprintf("%s/%d/live0000test", host, dead), false},
		{"a dead process of this machine", fmt.Sprintf("%s/%d/dead0000test", host, dead), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			hold(t, kc, c.holder)
			l, err := Acquire(ctx, kc, Options{})
			if c.takeover {
				if err != nil {
					t.Fatalf("not taken over: %v", err)
				}
				l.Release()
				return
			}
			if _, refused := api.AsRefusal(err); !refused {
				if l != nil {
					l.Release()
				}
				t.Fatalf("taken over from %s: %v", c.holder, err)
			}
			_ = kc.CoordinationV1().Leases(Namespace).Delete(ctx, Name, metav1.DeleteOptions{})
		})
	}
}

// One run, one identity: two holders of this build never share one.
func TestHolderIsUniquePerProcess(t *testing.T) {
	if nonce(Holder) == "" {
		t.Fatalf("holder %q has no random part", Holder)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPrintHolder$")
	cmd.Env = append(os.Environ(), "KS_LEASE_PRINT_HOLDER=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) == Holder || len(out) == 0 {
		t.Fatalf("another process's holder %q, this one's %q", out, Holder)
	}
}

// TestPrintHolder is TestHolderIsUniquePerProcess's other process.
func TestPrintHolder(t *testing.T) {
	if os.Getenv("KS_LEASE_PRINT_HOLDER") != "1" {
		t.Skip("run by TestHolderIsUniquePerProcess")
	}
	fmt.Print(Holder)
	os.Exit(0)
}

func hold(t *testing.T, kc kubernetes.Interface, holder string) {
	t.Helper()
	secs, now := int32(60), metav1.NewMicroTime(time.Now())
	_, err := kc.CoordinationV1().Leases(Namespace).Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: Name},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &now},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// deadPID is a pid no process has: a child that has exited and been reaped.
func deadPID(t *testing.T) int {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("pid %d was reused at once: %v", pid, err)
	}
	return pid
}
