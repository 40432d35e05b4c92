package controlplane

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// AuditEvent is the part of an apiserver audit event the tests read.
type AuditEvent struct {
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	// RequestReceived is when the apiserver received the request.
	RequestReceived time.Time `json:"requestReceivedTimestamp"`
	Verb            string    `json:"verb"`
	User            struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	// RequestObject is recorded for deletes only, whose DeleteOptions (and
	// so dryRun) travel in the body, not the URL.
	RequestObject *struct {
		DryRun []string `json:"dryRun"`
	} `json:"requestObject"`
}

// IsWrite reports whether the request asked to change state.
func (e AuditEvent) IsWrite() bool {
	switch e.Verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

// Persisted reports whether the request changed what is stored: a write that
// completed successfully and was not a dry run. Reviews (access, token,
// subject) are POSTed but never stored.
func (e AuditEvent) Persisted() bool {
	if e.ObjectRef != nil && strings.HasSuffix(e.ObjectRef.Resource, "reviews") {
		return false
	}
	return e.IsWrite() && e.Stage == "ResponseComplete" &&
		e.ResponseStatus != nil && e.ResponseStatus.Code < 300 &&
		!strings.Contains(e.RequestURI, "dryRun=") && (e.RequestObject == nil || len(e.RequestObject.DryRun) == 0)
}

// AuditEvents reads the audit log (Options.Audit must have been set), the
// parts the apiserver rotated away first (it rotates at 100 MB; audit-<time>.log
// sorts before audit.log and by time), so large runs are counted whole.
func (cp *ControlPlane) AuditEvents() ([]AuditEvent, error) {
	if cp.auditPath == "" {
		return nil, errors.New("control plane started without Options.Audit")
	}
	ext := filepath.Ext(cp.auditPath)
	files, err := filepath.Glob(strings.TrimSuffix(cp.auditPath, ext) + "*" + ext)
	if err != nil {
		return nil, err
	}
	var out []AuditEvent
	for _, name := range files {
		if out, err = readAudit(name, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readAudit(name string, out []AuditEvent) ([]AuditEvent, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // a line being written as we read
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// AuditMark returns how many events the log holds now; pass it to EventsSince
// to see only what a command did.
func (cp *ControlPlane) AuditMark() int {
	ev, _ := cp.AuditEvents()
	return len(ev)
}

// EventsSince returns the events after mark made by user (all users when
// user is empty).
func (cp *ControlPlane) EventsSince(mark int, user string) ([]AuditEvent, error) {
	ev, err := cp.AuditEvents()
	if err != nil {
		return nil, err
	}
	if mark > len(ev) {
		mark = len(ev)
	}
	var out []AuditEvent
	for _, e := range ev[mark:] {
		if user == "" || e.User.Username == user {
			out = append(out, e)
		}
	}
	return out, nil
}

// PersistedWritesSince counts the writes by user after mark that changed
// stored state.
func (cp *ControlPlane) PersistedWritesSince(mark int, user string) ([]AuditEvent, error) {
	ev, err := cp.EventsSince(mark, user)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return nil, err
	}
	var out []AuditEvent
	for _, e := range ev {
		if e.Persisted() && !deleteNotStored(cs, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

// deleteNotStored judges a delete whose body the audit log lacks: before
// about 1.24, the apiserver records no request body for a custom resource's
// delete, so a dry run looks like any delete there. An object still there
// and not being deleted was not deleted.
func deleteNotStored(cs kubernetes.Interface, e AuditEvent) bool {
	if e.Verb != "delete" || e.RequestObject != nil || e.ObjectRef == nil || e.ObjectRef.Name == "" {
		return false
	}
	path, _, _ := strings.Cut(e.RequestURI, "?")
	b, err := cs.CoreV1().RESTClient().Get().AbsPath(path).DoRaw(context.Background())
	if err != nil {
		return false
	}
	var o metav1.PartialObjectMetadata
	return json.Unmarshal(b, &o) == nil && o.UID != "" && o.DeletionTimestamp == nil
}

func (cp *ControlPlane) serviceAccountExists(ctx context.Context, ns, name string) (bool, error) {
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return false, err
	}
	_, err = cs.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
