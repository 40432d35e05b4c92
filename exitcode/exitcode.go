// Package exitcode gives ks-clean's exit codes a meaning runbooks can rely on.
package exitcode

import "errors"

const (
	OK       = 0
	Error    = 1 // something failed: the message says what and what to do
	Usage    = 2 // bad flags or input, or a refusal; nothing was changed
	Critical = 3 // scan found a critical hazard
)

// Err carries an exit code with an error.
type Err struct {
	Code int
	Err  error
}

func (e *Err) Error() string { return e.Err.Error() }
func (e *Err) Unwrap() error { return e.Err }

// New wraps err with a code.
func New(code int, err error) error { return &Err{Code: code, Err: err} }

// Of returns the exit code for an error: its own, or Error.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var e *Err
	if errors.As(err, &e) {
		return e.Code
	}
	return Error
}
