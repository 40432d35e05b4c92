// Package exitcode gives ks-clean's exit codes a meaning runbooks and CI can
// rely on. Only the CLI (internal/cli) uses it: libraries return typed errors
// (api.Refusal, …) and the CLI maps them; New attaches a code to an error and
// Of reads it back through fmt.Errorf("...: %w", err) wrapping.
package exitcode

import "errors"

const (
	OK       = 0
	Error    = 1 // something failed: the message says what and what to do
	Usage    = 2 // bad flags or input, or a refusal; nothing was changed
	Critical = 3 // a scan found a critical hazard
	// Interrupted: Ctrl-C or SIGTERM (128+SIGINT, as shells report it);
	// an apply stopped between steps and resumes from its journal.
	Interrupted = 130
)

// Err carries an exit code with an error. (It cannot be called Error: that
// name is the code above.)
type Err struct {
	Code int
	Err  error
}

// Error returns the wrapped message; "" when there is none, for a code whose
// explanation was already printed.
func (e *Err) Error() string {
	if e.Err == nil {
		return ""
	}
	return e.Err.Error()
}

func (e *Err) Unwrap() error { return e.Err }

// New wraps err with a code.
func New(code int, err error) error { return &Err{Code: code, Err: err} }

// Of returns the exit code for an error: OK for nil, the code of the
// outermost *Err in its chain, else Error.
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
