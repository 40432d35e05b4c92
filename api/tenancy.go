package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// KindTenancy is the kind of a tenancy export: KubeSphere's users,
// workspaces, roles, role bindings and the namespace → workspace map of one
// cluster, carried over a reinstall (`ks-clean tenancy export|import`,
// `reinstall --keep-tenancy`).
const KindTenancy = "Tenancy"

// Tenancy is a file people read, edit and re-apply: YAML (or JSON), no
// digest, objects without what the server sets.
type Tenancy struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	CreatedAt  time.Time `json:"createdAt"`
	// Server and KubeSystemUID name the cluster it was exported from.
	Server        string `json:"server"`
	KubeSystemUID string `json:"kubeSystemUID"`
	// KubeSphere is the major version whose API the objects use: "3"
	// (iam.kubesphere.io/v1alpha2) or "4" (iam.kubesphere.io/v1beta1).
	KubeSphere string `json:"kubesphere"`
	// Passwords is true when users keep their password hashes
	// (--keep-passwords); otherwise they set one again at first login, or an
	// administrator does.
	Passwords bool `json:"passwords"`
	// Namespaces maps each namespace that was in a workspace to it.
	Namespaces map[string]string `json:"namespaces"`
	// Objects, in the order import creates them: roles, users and groups,
	// workspaces, then the bindings.
	Objects []*unstructured.Unstructured `json:"objects"`
}

// ErrTenancyFile: a tenancy file that cannot be imported as it is.
var ErrTenancyFile = errors.New("bad tenancy file")

// TenancyKinds are the kinds a tenancy file may hold, by group. Import
// creates nothing else, so the file cannot be used to smuggle in other
// objects. rbac.authorization.k8s.io Roles and RoleBindings are
// KubeSphere 3.x's namespace roles.
var TenancyKinds = map[string][]string{
	"iam.kubesphere.io":         {"GlobalRole", "WorkspaceRole", "ClusterRole", "Role", "User", "Group", "GlobalRoleBinding", "WorkspaceRoleBinding", "ClusterRoleBinding", "RoleBinding", "GroupBinding"},
	"tenant.kubesphere.io":      {"WorkspaceTemplate", "Workspace"},
	"rbac.authorization.k8s.io": {"Role", "RoleBinding"},
}

// TenancyRank orders a tenancy's objects for import: what others refer to
// first. Unknown kinds rank last (and are refused by ReadTenancy).
func TenancyRank(group, kind string) int {
	order := []string{"GlobalRole", "WorkspaceRole", "ClusterRole", "Role", "User", "Group", "WorkspaceTemplate", "Workspace", "GlobalRoleBinding", "WorkspaceRoleBinding", "ClusterRoleBinding", "RoleBinding", "GroupBinding"}
	for i, k := range order {
		if k == kind && IsTenancyKind(group, kind) {
			return i
		}
	}
	return len(order)
}

// IsTenancyKind: group/kind may be in a tenancy file.
func IsTenancyKind(group, kind string) bool {
	for _, k := range TenancyKinds[group] {
		if k == kind {
			return true
		}
	}
	return false
}

// WriteTenancy writes t as YAML, or as JSON when path ends in .json; mode
// 0600, since it may hold password hashes. It writes a new file beside path
// and renames it over path: an existing file's wider mode is not kept, and
// a symlink planted at path is not followed. A path that is a symlink or
// not a regular file is refused (nothing written).
func WriteTenancy(path string, t *Tenancy) error {
	b, err := MarshalTenancy(t, strings.HasSuffix(path, ".json"))
	if err != nil {
		return err
	}
	switch fi, err := os.Lstat(path); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("write the tenancy export: %w", err)
	case fi.Mode()&os.ModeSymlink != 0:
		return Refuse(FixNone, "%s is a symlink: a tenancy export is never written through one (it may hold password hashes); remove it or choose another file", path)
	case !fi.Mode().IsRegular():
		return Refuse(FixNone, "%s is not a regular file (%s): choose another file for the tenancy export", path, fi.Mode().Type())
	}
	// CreateTemp makes the file 0600 with O_EXCL: never an existing file,
	// never through a symlink.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write the tenancy export beside %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write the tenancy export %s: %w", path, err)
	}
	return nil
}

// MarshalTenancy is t as YAML (or indented JSON).
func MarshalTenancy(t *Tenancy, asJSON bool) ([]byte, error) {
	if asJSON {
		b, err := json.MarshalIndent(t, "", "  ")
		return append(b, '\n'), err
	}
	return yaml.Marshal(t)
}

// ReadTenancy reads and checks a tenancy file (YAML or JSON): its kind and
// version, and that every object is a tenancy object with a name.
func ReadTenancy(path string) (*Tenancy, error) {
	b, err := readInput(path)
	if err != nil {
		return nil, Refuse(FixNone, "%w %s: %w", ErrTenancyFile, path, err)
	}
	var t Tenancy
	if err := yaml.UnmarshalStrict(b, &t); err != nil {
		return nil, Refuse(FixNone, "%w %s: %v (it must be what 'ks-clean tenancy export' wrote, edited as YAML or JSON)", ErrTenancyFile, path, err)
	}
	if t.Kind != KindTenancy || t.APIVersion != APIVersion {
		return nil, Refuse(FixNone, "%w %s: it is %s %q, not %s %q (write one with 'ks-clean tenancy export')", ErrTenancyFile, path, t.APIVersion, t.Kind, APIVersion, KindTenancy)
	}
	for i, o := range t.Objects {
		if o == nil || o.GetName() == "" || o.GetKind() == "" {
			return nil, Refuse(FixNone, "%w %s: object %d has no kind or no name", ErrTenancyFile, path, i+1)
		}
		gvk := o.GroupVersionKind()
		if !IsTenancyKind(gvk.Group, gvk.Kind) {
			return nil, Refuse(FixNone, "%w %s: object %d is %s %s, which is not one of KubeSphere's tenancy kinds; tenancy import creates only users, workspaces, their roles and role bindings (remove it from the file)", ErrTenancyFile, path, i+1, o.GetAPIVersion(), o.GetKind())
		}
	}
	return &t, nil
}
