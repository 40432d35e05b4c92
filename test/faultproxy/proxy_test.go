package faultproxy_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/faultproxy"
)

// While faults are on, a watch through the proxy is cut within half a
// second; once they are off, it stays open.
func TestWatchStreamsAreDropped(t *testing.T) {
	cp := controlplane.StartT(t, controlplane.Options{NoControllerManager: true})
	px, err := faultproxy.Start(cp.Config, 1, 0) // rate 0: only watches are hit
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	k, err := kubernetes.NewForConfig(px.Config())
	if err != nil {
		t.Fatal(err)
	}
	open := func() (closedWithin time.Duration) {
		w, err := k.CoreV1().Namespaces().Watch(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		start := time.Now()
		timeout := time.After(2 * time.Second)
		for {
			select {
			case _, ok := <-w.ResultChan():
				if !ok {
					return time.Since(start)
				}
			case <-timeout:
				return 0
			}
		}
	}
	if d := open(); d == 0 || d > time.Second {
		t.Fatalf("watch with faults on: closed after %s (0: still open after 2s)", d)
	}
	px.Enable(false)
	if d := open(); d != 0 {
		t.Fatalf("watch with faults off closed after %s", d)
	}
	if f := px.Faults(); f.Watches != 2 || f.WatchDropped != 1 {
		t.Fatalf("counted %+v", f)
	}
}
