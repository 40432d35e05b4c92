package uninstall

import (
	"errors"
	"sync"
)

// DisableDriftCheck lets the negative control run a plan that forgot to
// detach, which the drift check would otherwise refuse.
func DisableDriftCheck(a *Apply) { a.noDriftCheck = true }

// DisableGuard runs apply without its deletion guard: the negative control
// of the guard's test.
func DisableGuard(a *Apply) { a.noGuard = true }

// UseTripwire makes every apply use the guard's tripwire, the fallback for
// servers without admission policies; it returns the undo.
func UseTripwire() func() {
	tripwireOnly = true
	return func() { tripwireOnly = false }
}

// PolicyServed reports whether the server has the ValidatingAdmissionPolicy
// API the guard needs (else apply falls back to the tripwire).
var PolicyServed = policyServed

// FailJournal makes every journal write after the first n fail, as when
// the disk fills up mid-apply.
func FailJournal(a *Apply, n int) {
	var mu sync.Mutex
	a.journalFault = func(string) error {
		mu.Lock()
		defer mu.Unlock()
		if n > 0 {
			n--
			return nil
		}
		return errors.New("write journal: no space left on device")
	}
}
