package api

import (
	"errors"
	"fmt"
)

// Fix names the way out of a refusal in terms of what to change, not of how
// a program is invoked: the CLI turns it into flag advice.
type Fix string

const (
	FixNone Fix = ""
	// FixNewPlan: make a new plan (this one is damaged, edited, stale or
	// no longer matches the cluster).
	FixNewPlan Fix = "new-plan"
	// FixCluster: point at the right cluster (context, kubeconfig).
	FixCluster Fix = "cluster"
	// FixAllowStale: the plan is older than allowed.
	FixAllowStale Fix = "allow-stale"
	// FixBackupDir: choose another backup directory.
	FixBackupDir Fix = "backup-dir"
	// FixPermissions: use an account with the permissions listed.
	FixPermissions Fix = "permissions"
	// FixWait: another apply holds the cluster; wait for it.
	FixWait Fix = "wait"
	// FixProtect: a namespace that must be kept is missing or deleted.
	FixProtect Fix = "protect"
	// FixBlocker: something the plan cannot remove keeps the teardown
	// from finishing (the refusal names it and the ways out).
	FixBlocker Fix = "blocker"
	// FixMembers: the host and member clusters given do not fit together.
	FixMembers Fix = "members"
	// FixBackup: the backup given cannot be restored as it is (incomplete,
	// edited, another cluster's, or of an apply that changed nothing).
	FixBackup Fix = "backup"
)

// Refusal is an operation refused before it changed anything, because of
// its input or the cluster's state. Err says what and to which object.
type Refusal struct {
	Err error
	Fix Fix
}

func (r *Refusal) Error() string { return r.Err.Error() }
func (r *Refusal) Unwrap() error { return r.Err }

// Refuse makes a Refusal from a message (%w wraps as with fmt.Errorf).
func Refuse(fix Fix, format string, args ...any) error {
	return &Refusal{Err: fmt.Errorf(format, args...), Fix: fix}
}

// AsRefusal returns the Refusal in err's chain, if any.
func AsRefusal(err error) (*Refusal, bool) {
	var r *Refusal
	ok := errors.As(err, &r)
	return r, ok
}

// ErrTampered is returned when a plan's digest does not match its content.
var ErrTampered = errors.New("plan digest does not match its content")

// ErrBackupEdited is returned when a backup's file does not match the
// checksum apply recorded for it.
var ErrBackupEdited = errors.New("its content does not match the checksum apply recorded")

// ErrInterrupted is returned when an apply stops before its end (Ctrl-C, or
// a test's stop); its journal lets the same command resume.
var ErrInterrupted = errors.New("apply interrupted; run the same command again to resume")

// ErrLeaseLost is returned when an apply lost the cluster's Lease while it
// ran (another holder took it, or it could not renew it in time): it issued
// no write after noticing, and its journal lets it resume once the other
// holder is done.
var ErrLeaseLost = errors.New("lost the cluster's Lease: another ks-clean run may hold the cluster; no write was issued after the loss was noticed")

// ErrGuardTripped is returned when an apply stopped because a protected
// namespace or retained volume began to be deleted while it ran, on a
// server whose guard could only watch (the tripwire).
var ErrGuardTripped = errors.New("stopped: the deletion guard's tripwire fired")

// GuardName names the deletion guard `ks-clean apply` installs for its run
// (a ValidatingAdmissionPolicy and its binding); scan reports one left over.
const GuardName = "ks-clean-guard"
