// Package reinstall is `ks-clean reinstall`: plan and apply the uninstall
// with every safety of apply, prove the cluster clean, install KubeSphere with
// the Helm SDK, and prove the new install healthy. It never installs over a
// cluster it could not prove clean.
package reinstall

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/internal/lease"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/footprint"
	"github.com/ks-clean/ks-clean/scan/hazard"
	"github.com/ks-clean/ks-clean/tenancy"
	"github.com/ks-clean/ks-clean/uninstall"
)

// Options of a reinstall.
type Options struct {
	// Chart is a local chart directory or .tgz, an https:// URL to a chart
	// archive, or an oci:// reference; Version, the exact chart version,
	// is required for the last two and checked against the chart for all.
	Chart, Version string
	// InsecureHTTP allows an http:// chart or values file.
	InsecureHTTP bool
	// Verify checks the chart archive against its provenance file (.prov
	// beside it) with a key of Keyring (default: the user's GnuPG public
	// keyring, as Helm's), and refuses a chart that fails.
	Verify     bool
	Keyring    string
	Namespace  string // default kubesphere-system
	Release    string // default ks-core
	ValueFiles []string
	Set        []string
	// KeepWorkspaceLabels leaves kubesphere.io/workspace on namespaces so
	// the new install re-binds them.
	KeepWorkspaceLabels bool
	// KeepTenancy exports KubeSphere's users, workspaces, roles, role
	// bindings and namespace → workspace map before the uninstall, and
	// imports them once the new install is proven healthy (3.x→3.x,
	// 4.x→4.x). KeepPasswords keeps the users' password hashes.
	KeepTenancy, KeepPasswords bool
	Wait                       bool
	Timeout                    time.Duration
	// StuckAfter gives the install up early when a Job it made (Helm
	// waits on hook Jobs whatever --wait says) has not progressed for this
	// long; a Pod that cannot pull its image gives it up at once.
	StuckAfter time.Duration
	// Notify receives the install's progress: each Job it waits on, and
	// why, whenever that changes.
	Notify func(string)
	// DryRun stops after planning the uninstall and rendering the install.
	DryRun bool
	// WorkDir is where the uninstall plan is saved, and its backup beside
	// it (default: StateDir()). Plans and backups hold Secrets: the
	// default is private to the user.
	WorkDir string
	Context string
	// Members are member clusters of this host, torn down with it in one
	// plan (members unjoined first); the install is on the host only, and
	// each member is proven clean too.
	Members []scan.Target
	Apply   uninstall.Options
}

// Reinstall runs one reinstall on a cluster (and tears its members down).
type Reinstall struct {
	Clients *kube.Clients
	Options

	planPath string
	// lease is the host's, held from the uninstall to the import.
	lease *lease.Lease
}

// KindResult is the kind of a reinstall's JSON result.
const KindResult = "ReinstallResult"

// Result says what happened, phase by phase.
type Result struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	PlanPath   string `json:"planPath"`
	// Chart is the chart installed (or rendered), with its digest.
	Chart     *ChartInfo        `json:"chart,omitempty"`
	Steps     int               `json:"steps"`
	Uninstall *uninstall.Result `json:"uninstall,omitempty"`
	Clean     bool              `json:"clean"`
	Release   *ReleaseInfo      `json:"release,omitempty"`
	Healthy   bool              `json:"healthy"`
	Problems  []string          `json:"problems,omitempty"`
	// TenancyFile is the tenancy export (--keep-tenancy), kept after the
	// reinstall: 'ks-clean tenancy import' re-applies it.
	TenancyFile string `json:"tenancyFile,omitempty"`
	// Tenancy is what the import did (--keep-tenancy).
	Tenancy *tenancy.ImportResult `json:"tenancy,omitempty"`
	// Manifest is the rendered install (dry run only).
	Manifest string `json:"manifest,omitempty"`
	// DurationsSeconds times each phase that ran.
	DurationsSeconds map[string]float64 `json:"durationsSeconds"`
}

// ReleaseInfo describes the installed release.
type ReleaseInfo struct {
	Name         string `json:"name"`
	Namespace    string `json:"namespace"`
	Chart        string `json:"chart"`
	ChartVersion string `json:"chartVersion"`
	AppVersion   string `json:"appVersion"`
	Status       string `json:"status"`
	Revision     int    `json:"revision"`
}

// ErrTenancyMismatch: --keep-tenancy across KubeSphere major versions.
var ErrTenancyMismatch = errors.New("--keep-tenancy carries tenancy within one KubeSphere major version only")

// ErrNotClean stops a reinstall before it installs anything.
var ErrNotClean = errors.New("the cluster is not clean after the uninstall; nothing was installed")

// DefaultOptions are the defaults of Options (the CLI's flags start from
// them; Run fills a zero field with them).
func DefaultOptions() Options {
	return Options{Namespace: "kubesphere-system", Release: "ks-core", Timeout: 10 * time.Minute, StuckAfter: 3 * time.Minute, Apply: uninstall.DefaultOptions()}
}

func (r *Reinstall) defaults() error {
	d := DefaultOptions()
	if r.Namespace == "" {
		r.Namespace = d.Namespace
	}
	if r.Release == "" {
		r.Release = d.Release
	}
	if r.StuckAfter == 0 {
		r.StuckAfter = d.StuckAfter
	}
	if r.Timeout == 0 {
		r.Timeout = d.Timeout
	}
	if r.WorkDir == "" {
		dir, err := StateDir()
		if err != nil {
			return err
		}
		r.WorkDir = dir
	} else if err := privateDir("work directory", r.WorkDir, "give a directory of your own with --work-dir (created mode 0700 if missing)"); err != nil {
		return err
	}
	r.planPath = filepath.Join(r.WorkDir, fmt.Sprintf("ks-clean-reinstall-%s.json", time.Now().UTC().Format("20060102-150405")))
	return nil
}

// StateDir is ks-clean's private state directory, made mode 0700 (see
// privateDir): $XDG_STATE_HOME/ks-clean, else ~/.local/state/ks-clean,
// else (no home) the user's cache directory.
func StateDir() (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		if home, err := os.UserHomeDir(); err == nil {
			base = filepath.Join(home, ".local", "state")
		} else if base, err = os.UserCacheDir(); err != nil {
			return "", fmt.Errorf("no private directory for the reinstall's plan and backup (set XDG_STATE_HOME or HOME): %w", err)
		}
	}
	dir := filepath.Join(base, "ks-clean")
	if err := privateDir("state directory", dir, "remove it (ks-clean makes it again, mode 0700), or give a directory of your own with --work-dir"); err != nil {
		return "", err
	}
	return dir, nil
}

// Run reinstalls.
func (r *Reinstall) Run(ctx context.Context) (*Result, error) {
	res := &Result{APIVersion: api.APIVersion, Kind: KindResult, DurationsSeconds: map[string]float64{}}
	if err := r.CheckChart(); err != nil {
		return res, err
	}
	if err := r.defaults(); err != nil {
		return res, err
	}
	lap := func(name string, start time.Time) {
		res.DurationsSeconds[name] = time.Since(start).Round(time.Millisecond).Seconds()
	}

	// Load the chart and values first: a typo in --chart must not cost an
	// uninstall.
	start := time.Now()
	ch, vals, chartInfo, err := r.loadChart()
	if err != nil {
		return res, err
	}
	res.Chart = chartInfo
	lap("chart", start)

	var kept *api.Tenancy
	if r.KeepTenancy {
		start = time.Now()
		if kept, err = r.exportTenancy(ctx, ch, res); err != nil {
			return res, err
		}
		lap("tenancy-export", start)
	}

	start = time.Now()
	uninstallRun, err := r.plan(ctx, res)
	if err != nil {
		return res, err
	}
	lap("plan", start)

	if r.DryRun {
		rel, err := r.install(ctx, ch, vals, true)
		if err != nil {
			return res, fmt.Errorf("render the install: %w", err)
		}
		res.Manifest = rel.Manifest
		return res, nil
	}

	// One Lease on the host from the uninstall's first write to the
	// import's last: no other ks-clean run writes between them.
	held, err := lease.Acquire(ctx, r.Clients.Kube, lease.Options{Duration: r.Apply.LeaseDuration, Check: r.Apply.LeaseCheck})
	if err != nil {
		return res, err
	}
	defer held.Release()
	r.lease = held

	start = time.Now()
	err = uninstallRun(ctx)
	lap("uninstall", start)
	if err != nil {
		return res, fmt.Errorf("uninstall: %w; %w", err, ErrNotClean)
	}

	start = time.Now()
	for i, t := range r.clusters() {
		problems, err := proveClean(ctx, t)
		if err != nil {
			return res, err
		}
		for _, p := range problems {
			if i > 0 {
				p = fmt.Sprintf("member context %q: %s", t.Context, p)
			}
			res.Problems = append(res.Problems, p)
		}
	}
	lap("prove-clean", start)
	if len(res.Problems) > 0 {
		return res, fmt.Errorf("%w: %s", ErrNotClean, strings.Join(res.Problems, "; "))
	}
	res.Clean = true

	if err := held.Lost(); err != nil {
		return res, err
	}
	start = time.Now()
	rel, err := r.installWatched(ctx, ch, vals)
	lap("install", start)
	var stuck *InstallStuckError
	if errors.As(err, &stuck) {
		return res, fmt.Errorf("helm install %s/%s: %w", r.Namespace, r.Release, err)
	}
	if err != nil {
		if r.Wait && (errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timed out")) {
			err = fmt.Errorf("%w: its resources were not ready within --timeout %s (--wait); look at its pods (kubectl -n %s get pods), or raise --timeout", err, r.Timeout, r.Namespace)
		}
		return res, fmt.Errorf("helm install %s/%s: %w (the old install was removed and the users' data kept; the new release is left as Helm left it, and a new reinstall removes it first)", r.Namespace, r.Release, err)
	}
	res.Release = info(rel)

	start = time.Now()
	res.Problems, err = r.health(ctx)
	lap("prove-healthy", start)
	if err != nil {
		return res, err
	}
	res.Healthy = len(res.Problems) == 0
	if !res.Healthy {
		return res, fmt.Errorf("the new install is not healthy: %s", strings.Join(res.Problems, "; "))
	}
	if kept != nil {
		// Only now: on 3.x the re-bound namespaces become owned by their
		// Workspaces again, safe only once health proved one cluster
		// record per cluster.
		start = time.Now()
		// kept is what this run read from this cluster before the
		// uninstall, never re-read from the file: it grants only what the
		// cluster granted (export leaves out Kubernetes' and KubeSphere's
		// own namespaces), so its platform admins come back with it.
		im := &tenancy.Import{Clients: r.Clients, Tenancy: kept, Options: tenancy.ImportOptions{AllowPrivileged: true, Lease: held}}
		res.Tenancy, err = im.Run(ctx)
		lap("tenancy-import", start)
		if err != nil {
			return res, fmt.Errorf("tenancy import: %w (the new install is healthy; the export is kept in %s: 'ks-clean tenancy import %s' re-applies it once fixed)", err, res.TenancyFile, res.TenancyFile)
		}
	}
	return res, nil
}

// exportTenancy saves the tenancy beside the plan, after checking the chart
// installs the same KubeSphere major version.
func (r *Reinstall) exportTenancy(ctx context.Context, ch *chart.Chart, res *Result) (*api.Tenancy, error) {
	ex := &tenancy.Export{Clients: r.Clients, Options: tenancy.ExportOptions{KeepPasswords: r.KeepPasswords}}
	t, err := ex.Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("--keep-tenancy: %w", err)
	}
	if app := ch.Metadata.AppVersion; chartMajor(app) != "" && chartMajor(app) != t.KubeSphere {
		return nil, api.Refuse(api.FixNone, "%w: this cluster has KubeSphere %s.x tenancy and the chart installs %s; nothing was changed. Reinstall without --keep-tenancy, then carry the tenancy over by hand: docs/runbook-keep-tenancy.md", ErrTenancyMismatch, t.KubeSphere, app)
	}
	res.TenancyFile = strings.TrimSuffix(r.planPath, ".json") + "-tenancy.yaml"
	if err := api.WriteTenancy(res.TenancyFile, t); err != nil {
		return nil, fmt.Errorf("save the tenancy export: %w", err)
	}
	return t, nil
}

// chartMajor is the major version of a KubeSphere appVersion ("v4.1.3" is
// "4"), or "" when it is not one.
func chartMajor(appVersion string) string {
	v := strings.TrimPrefix(appVersion, "v")
	if i := strings.IndexByte(v, '.'); i > 0 {
		return v[:i]
	}
	return ""
}

// plan scans and plans the uninstall (of the host alone, or of the host and
// its members), saves the plan, and returns what applies it.
func (r *Reinstall) plan(ctx context.Context, res *Result) (func(context.Context) error, error) {
	so := scan.Options{Footprint: footprint.Options{KeepWorkspaceLabels: r.KeepWorkspaceLabels}}
	rep, err := scan.Run(ctx, r.clusters(), so)
	if err != nil {
		return nil, err
	}
	p, err := plan.Build(rep, plan.Options{})
	if err != nil {
		return nil, err
	}
	if err := api.Write(r.planPath, p); err != nil {
		return nil, err
	}
	res.PlanPath = r.planPath
	clients := map[string]*kube.Clients{}
	for _, t := range r.clusters() {
		clients[t.Context] = t.Clients
	}
	for _, st := range p.Stages {
		res.Steps += len(st.Steps)
	}
	return func(ctx context.Context) (err error) {
		a := &uninstall.Apply{Plan: p, Clients: clients, PlanPath: r.planPath, Options: r.Apply, Leases: map[string]*lease.Lease{r.Context: r.lease}}
		res.Uninstall, err = a.Run(ctx)
		return err
	}, nil
}

// clusters are the host, then its members.
func (r *Reinstall) clusters() []scan.Target {
	return append([]scan.Target{{Context: r.Context, Clients: r.Clients}}, r.Members...)
}

// proveClean rescans a cluster: nothing of KubeSphere/KubeFed and no
// critical finding, or the problems that say otherwise.
func proveClean(ctx context.Context, t scan.Target) ([]string, error) {
	after, err := scan.Cluster(ctx, t, scan.Options{Footprint: footprint.Options{KeepWorkspaceLabels: true}})
	if err != nil {
		return nil, err
	}
	problems := after.Footprint.Remnants(0)
	for _, f := range after.Findings {
		if f.Severity == api.Critical {
			problems = append(problems, f.ID+": "+f.Message)
		}
	}
	return problems, nil
}

// installWatched installs while following the Jobs the install waits on:
// it reports them through Notify, and when one cannot finish it stops
// waiting, removes what the install made, and proves the cluster clean
// again (InstallStuckError).
func (r *Reinstall) installWatched(ctx context.Context, ch *chart.Chart, vals map[string]any) (*release.Release, error) {
	_, err := r.Clients.Kube.CoreV1().Namespaces().Get(ctx, r.Namespace, metav1.GetOptions{})
	nsExisted := err == nil
	// The chart's CRDs that are not there yet: Helm installs them and never
	// removes them, so an install given up removes them itself.
	var newCRDs []string
	for _, f := range ch.CRDObjects() {
		for _, o := range footprint.ManifestObjects(string(f.File.Data), "") {
			if _, err := r.Clients.Dynamic.Resource(crdsGVR).Get(ctx, o.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				newCRDs = append(newCRDs, o.Name)
			}
		}
	}
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := newInstallWatch(r.Clients.Kube, r.Namespace, r.StuckAfter, r.Notify)
	stuck := make(chan *InstallStuckError, 1)
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ictx.Done():
				return
			case <-t.C:
				if e := w.check(ictx); e != nil {
					stuck <- e
					cancel()
					return
				}
			}
		}
	}()
	rel, err := r.install(ictx, ch, vals, false)
	cancel()
	if err == nil {
		return rel, nil // it finished first: nothing to give up
	}
	select {
	case e := <-stuck:
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		e.CleanupErr = r.undoInstall(ctx, nsExisted, newCRDs)
		if e.CleanupErr == nil {
			problems, perr := proveClean(ctx, scan.Target{Context: r.Context, Clients: r.Clients})
			switch {
			case perr != nil:
				e.CleanupErr = perr
			case len(problems) > 0:
				e.CleanupErr = fmt.Errorf("not clean after the removal: %s", strings.Join(problems, "; "))
			default:
				e.Cleaned = true
			}
		}
		return nil, e
	default:
	}
	return rel, err
}

// undoInstall removes an install given up early: the release (without
// hooks), the Jobs it made, the CRDs it created (seconds old: their only
// instances are the install's), and its namespace when the install created
// it.
func (r *Reinstall) undoInstall(ctx context.Context, nsExisted bool, newCRDs []string) error {
	cfg, err := kube.HelmConfig(r.Clients.Config, r.Namespace)
	if err != nil {
		return err
	}
	u := action.NewUninstall(cfg)
	u.DisableHooks, u.IgnoreNotFound, u.Timeout = true, true, r.Timeout
	if _, err := u.Run(r.Release); err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return fmt.Errorf("helm uninstall %s/%s: %w", r.Namespace, r.Release, err)
	}
	bg := metav1.DeletePropagationBackground
	if err := r.Clients.Kube.BatchV1().Jobs(r.Namespace).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &bg}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete the install's Jobs in %s: %w", r.Namespace, err)
	}
	for _, name := range newCRDs {
		if err := r.Clients.Dynamic.Resource(crdsGVR).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete CRD %s, which the install created: %w", name, err)
		}
	}
	if nsExisted {
		return nil
	}
	if err := r.Clients.Kube.CoreV1().Namespaces().Delete(ctx, r.Namespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete namespace %s, which the install created: %w", r.Namespace, err)
	}
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, undoWait, true, func(ctx context.Context) (bool, error) {
		_, err := r.Clients.Kube.CoreV1().Namespaces().Get(ctx, r.Namespace, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		return fmt.Errorf("namespace %s, which the install created, is not gone after %s (kubectl get ns %s -o yaml says what it waits for): %w", r.Namespace, undoWait, r.Namespace, err)
	}
	return nil
}

var crdsGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// undoWait bounds the wait for the namespace of an install given up: its
// Pods get their grace period (30 s by default) to stop.
const undoWait = 2 * time.Minute

// install installs, or upgrades a release that exists (install-or-upgrade).
func (r *Reinstall) install(ctx context.Context, ch *chart.Chart, vals map[string]any, dryRun bool) (*release.Release, error) {
	cfg, err := kube.HelmConfig(r.Clients.Config, r.Namespace)
	if err != nil {
		return nil, err
	}
	if dryRun {
		// Rendered as it will be installed: after the uninstall, so without
		// checking against what is in the cluster now.
		in := action.NewInstall(cfg)
		in.ReleaseName, in.Namespace, in.DryRun, in.ClientOnly = r.Release, r.Namespace, true, true
		return in.RunWithContext(ctx, ch, vals)
	}
	if _, err := cfg.Releases.Last(r.Release); err == nil {
		up := action.NewUpgrade(cfg)
		up.Namespace, up.Wait, up.Timeout = r.Namespace, r.Wait, r.Timeout
		return up.RunWithContext(ctx, r.Release, ch, vals)
	} else if !errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, err
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace, in.CreateNamespace = r.Release, r.Namespace, true
	in.Wait, in.Timeout = r.Wait, r.Timeout
	return in.RunWithContext(ctx, ch, vals)
}

// health: the release is deployed, no critical finding, and one cluster
// record per cluster identity.
func (r *Reinstall) health(ctx context.Context) ([]string, error) {
	cfg, err := kube.HelmConfig(r.Clients.Config, r.Namespace)
	if err != nil {
		return nil, err
	}
	var problems []string
	rel, err := action.NewStatus(cfg).Run(r.Release)
	if err != nil {
		return nil, fmt.Errorf("status of %s/%s: %w", r.Namespace, r.Release, err)
	}
	if rel.Info.Status != release.StatusDeployed {
		problems = append(problems, fmt.Sprintf("release %s/%s is %s, not deployed", r.Namespace, r.Release, rel.Info.Status))
	}
	sr, err := scan.Cluster(ctx, scan.Target{Context: r.Context, Clients: r.Clients}, scan.Options{})
	if err != nil {
		return nil, err
	}
	for _, f := range sr.Findings {
		if f.Severity == api.Critical || f.ID == hazard.ClusterAlias {
			problems = append(problems, f.ID+": "+f.Message)
		}
	}
	return problems, nil
}

func info(rel *release.Release) *ReleaseInfo {
	ri := &ReleaseInfo{Name: rel.Name, Namespace: rel.Namespace, Revision: rel.Version}
	if rel.Info != nil {
		ri.Status = string(rel.Info.Status)
	}
	if rel.Chart != nil && rel.Chart.Metadata != nil {
		ri.Chart, ri.ChartVersion, ri.AppVersion = rel.Chart.Metadata.Name, rel.Chart.Metadata.Version, rel.Chart.Metadata.AppVersion
	}
	return ri
}
