// Package controlplane runs a real Kubernetes control plane for tests and the
// demo: etcd and kube-apiserver through controller-runtime's envtest, plus a
// kube-controller-manager with the garbage collector, namespace and volume
// binder controllers on, so that cascading deletion, namespace termination
// and volume reclaim really happen.
//
// Every safety claim of ks-clean is a claim about what a real cluster does
// when an owner is deleted; a fake clientset has no garbage collector and
// would let those claims pass untested.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Controllers is what the kube-controller-manager runs: enough for owner
// references to cascade, namespaces to terminate, service account tokens
// to be issued (KubeFed join secrets need them) and volumes to be bound,
// protected while in use and reclaimed.
var Controllers = []string{"garbagecollector", "namespace", "serviceaccount", "serviceaccount-token", "persistentvolume-binder", "pvc-protection", "pv-protection"}

// Options configures a control plane.
type Options struct {
	// Dir holds certificates, kubeconfigs, logs and the audit log. Empty means
	// a new temporary directory, removed by Stop.
	Dir string
	// Audit turns on the apiserver audit log (metadata level, every request)
	// so tests can count the writes a command made.
	Audit bool
	// NoControllerManager skips kube-controller-manager at Start: no garbage
	// collection, no namespace termination until StartControllerManager is
	// called. Tests that seed custom resources start it after seeding: the
	// garbage collector learns new API types only every 30 seconds, while a
	// real KubeSphere install has been known to it for long.
	NoControllerManager bool
	// BinDir overrides where etcd, kube-apiserver and kube-controller-manager
	// are found (default: FindBinDir).
	BinDir string
}

// ControlPlane is a running etcd + kube-apiserver (+ kube-controller-manager).
type ControlPlane struct {
	// Config is a cluster-admin (system:masters) client config.
	Config *rest.Config
	// Dir is the working directory of this control plane.
	Dir string
	// AdminKubeconfig is the path of a kubeconfig for Config.
	AdminKubeconfig string

	env       *envtest.Environment
	ownDir    bool
	auditPath string
	binDir    string
	kcm       *exec.Cmd
	kcmDone   chan struct{}
	stopOnce  sync.Once
	stopErr   error
}

var setLoggerOnce sync.Once

// AdminUser is the user name of Config; audit queries use it to tell the
// test's own writes from the controllers'.
const AdminUser = "ks-clean-test-admin"

// Start starts a control plane and waits until the apiserver is healthy and
// the controller manager is running.
func Start(ctx context.Context, opts Options) (_ *ControlPlane, err error) {
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	// envtest logs through controller-runtime, which complains with a stack
	// trace unless a logger is set; the processes' own logs are in Dir.
	setLoggerOnce.Do(func() { ctrllog.SetLogger(logr.Discard()) })
	cp := &ControlPlane{Dir: opts.Dir}
	if cp.Dir == "" {
		if cp.Dir, err = os.MkdirTemp("", "ks-clean-cp-"); err != nil {
			return nil, err
		}
		cp.ownDir = true
	} else if err := os.MkdirAll(cp.Dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = cp.Stop()
		}
	}()

	certDir := filepath.Join(cp.Dir, "certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	cp.env = &envtest.Environment{
		BinaryAssetsDirectory:    binDir,
		ControlPlaneStartTimeout: 60 * time.Second,
		ControlPlaneStopTimeout:  20 * time.Second,
	}
	cp.env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(cp.Dir, "etcd")}
	if err := os.MkdirAll(cp.env.ControlPlane.Etcd.DataDir, 0o700); err != nil {
		return nil, err
	}
	api := cp.env.ControlPlane.GetAPIServer()
	api.CertDir = certDir
	api.Out, api.Err = logFile(cp.Dir, "kube-apiserver.log")
	// Route webhook and aggregated-API calls to Service endpoints, not to
	// ClusterIPs: there is no kube-proxy here, and a ClusterIP (10.0.0.x)
	// would send the call off this machine. With endpoint routing a Service
	// without pods fails at once, as in a cluster whose KubeSphere is gone.
	api.Configure().Set("enable-aggregator-routing", "true")
	if opts.Audit {
		cp.auditPath = filepath.Join(cp.Dir, "audit.log")
		policy := filepath.Join(cp.Dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			return nil, err
		}
		args := api.Configure()
		args.Set("audit-policy-file", policy)
		args.Set("audit-log-path", cp.auditPath)
		args.Set("audit-log-format", "json")
		args.Set("audit-log-mode", "blocking")
	}
	if _, err := cp.env.Start(); err != nil {
		return nil, fmt.Errorf("start etcd and kube-apiserver from %s (logs in %s): %w", binDir, cp.Dir, err)
	}

	admin, err := cp.env.AddUser(envtest.User{Name: AdminUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	cp.Config = rest.CopyConfig(admin.Config())
	cp.Config.QPS, cp.Config.Burst = 200, 400
	if cp.AdminKubeconfig, err = cp.writeKubeconfig("admin", admin); err != nil {
		return nil, err
	}

	cp.binDir = binDir
	if !opts.NoControllerManager {
		if err := cp.StartControllerManager(ctx); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

// Server is the apiserver URL, e.g. https://127.0.0.1:41234/.
func (cp *ControlPlane) Server() *url.URL {
	u, _ := url.Parse(cp.Config.Host)
	return u
}

// CA is the PEM bundle that verifies the apiserver's serving certificate
// (valid for 127.0.0.1 and localhost).
func (cp *ControlPlane) CA() []byte { return cp.Config.CAData }

// AddUser creates a client-certificate user with the given groups and writes
// a kubeconfig for it; RBAC for the user is the caller's business.
func (cp *ControlPlane) AddUser(name string, groups ...string) (*rest.Config, string, error) {
	u, err := cp.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, "", err
	}
	path, err := cp.writeKubeconfig(name, u)
	if err != nil {
		return nil, "", err
	}
	return rest.CopyConfig(u.Config()), path, nil
}

func (cp *ControlPlane) writeKubeconfig(name string, u *envtest.AuthenticatedUser) (string, error) {
	data, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(cp.Dir, "kubeconfig-"+name)
	return path, os.WriteFile(path, data, 0o600)
}

// Stop stops every process this control plane started and removes its
// temporary directory. Safe to call more than once.
func (cp *ControlPlane) Stop() error {
	cp.stopOnce.Do(func() {
		var errs []error
		if cp.kcm != nil && cp.kcm.Process != nil {
			_ = syscall.Kill(-cp.kcm.Process.Pid, syscall.SIGTERM)
			select {
			case <-cp.kcmDone:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-cp.kcm.Process.Pid, syscall.SIGKILL)
				<-cp.kcmDone
			}
		}
		if cp.env != nil {
			if err := cp.env.Stop(); err != nil {
				errs = append(errs, err)
			}
		}
		if cp.ownDir {
			if err := os.RemoveAll(cp.Dir); err != nil {
				errs = append(errs, err)
			}
		}
		cp.stopErr = errors.Join(errs...)
	})
	return cp.stopErr
}

// StartControllerManager starts kube-controller-manager (see
// Options.NoControllerManager) and waits until its controllers act.
func (cp *ControlPlane) StartControllerManager(ctx context.Context) error {
	if cp.kcm != nil {
		return nil
	}
	certDir := cp.env.ControlPlane.APIServer.CertDir
	kcmUser, err := cp.env.AddUser(envtest.User{Name: "system:kube-controller-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kubeconfig, err := cp.writeKubeconfig("kube-controller-manager", kcmUser)
	if err != nil {
		return err
	}
	caFile := filepath.Join(certDir, "ca.crt")
	if err := os.WriteFile(caFile, cp.Config.CAData, 0o600); err != nil {
		return err
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=" + strings.Join(Controllers, ","),
		"--leader-elect=false",
		"--secure-port=0",
		"--service-account-private-key-file=" + filepath.Join(certDir, "sa-signer.key"),
		"--root-ca-file=" + caFile,
		"--use-service-account-credentials=false",
		"--concurrent-gc-syncs=20",
		"--concurrent-namespace-syncs=10",
		// The volume binder binds static PersistentVolumes to their claims
		// and, for a released hostPath volume under /tmp whose policy is
		// Delete, deletes its directory and the volume: data loss, for real.
		"--enable-hostpath-provisioner=true",
		"--pvclaimbinder-sync-period=1s",
		"--kube-api-qps=200",
		"--kube-api-burst=400",
		"--v=1",
	}
	cmd := exec.Command(filepath.Join(cp.binDir, "kube-controller-manager"), args...)
	out, _ := logFile(cp.Dir, "kube-controller-manager.log")
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group, so Stop reaches it even if it forks, and a Ctrl-C
	// in the demo's terminal goes to the demo, which then stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kube-controller-manager: %w", err)
	}
	cp.kcm = cmd
	cp.kcmDone = make(chan struct{})
	go func() { _ = cmd.Wait(); close(cp.kcmDone) }()

	// Wait until it has connected: it records a lease-less start by creating
	// service accounts in existing namespaces (serviceaccount controller).
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-cp.kcmDone:
			return fmt.Errorf("kube-controller-manager exited early; see %s", filepath.Join(cp.Dir, "kube-controller-manager.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if ok, _ := cp.serviceAccountExists(ctx, "default", "default"); ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-controller-manager did not create the default ServiceAccount within 60s; see %s", filepath.Join(cp.Dir, "kube-controller-manager.log"))
		}
	}
}

func logFile(dir, name string) (*os.File, *os.File) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil
	}
	return f, f
}

// FindBinDir locates the control-plane binaries: $KUBEBUILDER_ASSETS, else
// the newest k8s-* that scripts/testbin.sh built, in $KS_TESTBIN_DIR, the
// user's cache (${XDG_CACHE_HOME:-~/.cache}/ks-clean/testbin, the script's
// default) or an older checkout's .testbin.
func FindBinDir() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, checkBinDir(d)
	}
	var dirs []string
	if d := os.Getenv("KS_TESTBIN_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		dirs = append(dirs, filepath.Join(d, "ks-clean", "testbin"))
	} else if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "ks-clean", "testbin"))
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				dirs = append(dirs, filepath.Join(dir, ".testbin"))
				break
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	for _, d := range dirs {
		matches, _ := filepath.Glob(filepath.Join(d, "k8s-*"))
		for i := len(matches) - 1; i >= 0; i-- {
			if checkBinDir(matches[i]) == nil {
				return matches[i], nil
			}
		}
	}
	return "", errors.New("control-plane binaries not found: run scripts/testbin.sh (make test does) or set KUBEBUILDER_ASSETS to a directory holding etcd, kube-apiserver and kube-controller-manager")
}

func checkBinDir(dir string) error {
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is missing from %s: run scripts/testbin.sh", b, dir)
		}
	}
	return nil
}

const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
# Deletes carry dryRun in their body: record it.
- level: Request
  verbs: ["delete", "deletecollection"]
- level: Metadata
`

// WriteKubeconfig writes one kubeconfig with a context per control plane
// (named by the map's keys, each with its admin credentials), as an operator
// with a host and its members has; the first name sorted is current.
func WriteKubeconfig(path string, contexts map[string]*ControlPlane) error {
	out := clientcmdapi.NewConfig()
	names := make([]string, 0, len(contexts))
	for name, cp := range contexts {
		names = append(names, name)
		in, err := clientcmd.LoadFromFile(cp.AdminKubeconfig)
		if err != nil {
			return err
		}
		ctx := in.Contexts[in.CurrentContext]
		if ctx == nil {
			return fmt.Errorf("%s has no current context", cp.AdminKubeconfig)
		}
		out.Clusters[name] = in.Clusters[ctx.Cluster]
		out.AuthInfos[name] = in.AuthInfos[ctx.AuthInfo]
		out.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	}
	sort.Strings(names)
	if len(names) > 0 {
		out.CurrentContext = names[0]
	}
	return clientcmd.WriteToFile(*out, path)
}
