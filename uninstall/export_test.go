package uninstall

// DisableDriftCheck lets the negative control run a plan that forgot to
// detach, which the drift check would otherwise refuse.
func DisableDriftCheck(a *Apply) { a.noDriftCheck = true }

// DisableGuard runs apply without its deletion guard: the negative control
// of the guard's test.
func DisableGuard(a *Apply) { a.noGuard = true }
