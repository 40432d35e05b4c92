package render

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/ks-clean/ks-clean/uninstall"
)

// On a terminal (a pty) the spinner runs while events update its text: run
// with -race, the two goroutines must not race, and the spinner must draw on
// the terminal it was given even when stdout is not one.
func TestProgressOnATerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty here: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	drawn := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(ptmx)
		drawn <- string(b)
	}()
	p := NewProgress(tty)
	if !p.tty {
		t.Skip("the pty is not taken for a terminal (TERM=dumb?)")
	}
	for i := 0; i <= 300; i++ {
		p.Event(uninstall.Event{Stage: "cluster", Phase: "detach", Done: i, Total: 300})
		if i%50 == 0 {
			time.Sleep(120 * time.Millisecond) // the spinner draws between
		}
	}
	p.Stop()
	tty.Close()
	// Only the spinner writes "detach N/300"; the phase's own line says
	// "done in".
	if out := <-drawn; !strings.Contains(out, "/300") {
		t.Fatalf("no spinner drawn on the terminal; it shows %q", out)
	}
}
