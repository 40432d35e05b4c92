package render

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/briandowns/spinner"
	"golang.org/x/term"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/uninstall"
)

// isTerminal: w is a terminal that understands cursor movement (not
// TERM=dumb, as in Emacs shells and some CI consoles): the only place for
// spinners, redrawn lines and colour.
func isTerminal(w io.Writer) (*os.File, bool) {
	f, ok := w.(*os.File)
	return f, ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
}

// Spin shows a spinner on a terminal; elsewhere it prints nothing, so logs
// and pipes stay clean. It returns what stops it.
func Spin(w io.Writer, msg string) func() {
	f, tty := isTerminal(w)
	if !tty {
		return func() {}
	}
	s := newSpinner(f)
	s.Suffix = " " + msg // before Start: nothing reads it yet
	s.Start()
	return s.Stop
}

// newSpinner draws on f. WithWriterFile, not WithWriter: the spinner asks
// its WriterFile whether it is a terminal, and WithWriter leaves that
// stdout, so `apply -o json > file` on a terminal would show no progress on
// stderr.
func newSpinner(f *os.File) *spinner.Spinner {
	return spinner.New(spinner.CharSets[14], 100*time.Millisecond, spinner.WithWriterFile(f))
}

// Progress shows an apply's progress: a spinner per phase with done/total on
// a terminal, plain lines otherwise (one per phase and one per failed step).
type Progress struct {
	w     io.Writer
	f     *os.File // w, when it is a terminal
	tty   bool
	mu    sync.Mutex
	stage string
	phase api.Phase
	sp    *spinner.Spinner
	start time.Time
}

// NewProgress writes progress to w.
func NewProgress(w io.Writer) *Progress {
	f, tty := isTerminal(w)
	return &Progress{w: w, f: f, tty: tty}
}

// Event takes one progress event (uninstall.Options.Progress).
func (p *Progress) Event(e uninstall.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Stage != p.stage {
		p.finishPhase()
		p.stage, p.phase = e.Stage, ""
		fmt.Fprintf(p.w, "stage %s\n", e.Stage)
	}
	if e.Phase != p.phase {
		p.finishPhase()
		p.phase, p.start = e.Phase, time.Now()
		if p.tty {
			p.sp = newSpinner(p.f)
			p.sp.Start()
		}
	}
	if p.sp != nil {
		// The spinner's goroutine reads Suffix under its lock.
		p.sp.Lock()
		p.sp.Suffix = fmt.Sprintf(" %s %d/%d", e.Phase, e.Done, e.Total)
		p.sp.Unlock()
	}
	switch e.Status {
	case uninstall.StatusNote:
		p.line("  %s", e.Detail)
		return
	case uninstall.StatusFailed:
		p.line("  failed: %s", e.Detail)
	}
	if e.Done == e.Total && !p.tty {
		fmt.Fprintf(p.w, "%-11s %d/%d steps in %s\n", e.Phase, e.Done, e.Total, time.Since(p.start).Round(time.Millisecond))
	}
}

// line prints a line of its own, the spinner stopped meanwhile.
func (p *Progress) line(format string, a ...any) {
	if p.sp != nil {
		p.sp.Stop()
	}
	fmt.Fprintf(p.w, format+"\n", a...)
	if p.sp != nil {
		p.sp.Start()
	}
}

func (p *Progress) finishPhase() {
	if p.sp != nil {
		p.sp.Stop()
		fmt.Fprintf(p.w, "%-11s done in %s\n", p.phase, time.Since(p.start).Round(time.Millisecond))
		p.sp = nil
	}
}

// Stop ends the last phase's spinner.
func (p *Progress) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishPhase()
}
