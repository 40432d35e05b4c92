package reinstall

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/openpgp" //nolint:staticcheck // Helm's provenance format is built on it

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/provenance"

	"github.com/ks-clean/ks-clean/api"
)

const miniChart = "../test/charts/ks-core-mini"

// packaged is ks-core-mini as a .tgz in dir (ks-core-1.1.5.tgz).
func packaged(t *testing.T, dir string) string {
	t.Helper()
	ch, err := loader.Load(miniChart)
	if err != nil {
		t.Fatal(err)
	}
	path, err := chartutil.Save(ch, dir)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// sign writes tgz.prov, signed by a new key, and returns a keyring file
// holding that key's public part.
func sign(t *testing.T, tgz string) string {
	t.Helper()
	e, err := openpgp.NewEntity("ks-clean test", "", "test@ks-clean.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	prov, err := (&provenance.Signatory{Entity: e}).ClearSign(tgz)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tgz+".prov", []byte(prov), 0o600); err != nil {
		t.Fatal(err)
	}
	keyring := filepath.Join(t.TempDir(), "pubring.gpg")
	f, err := os.Create(keyring)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := e.Serialize(f); err != nil {
		t.Fatal(err)
	}
	return keyring
}

func sha(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func load(t *testing.T, o Options) (*ChartInfo, error) {
	t.Helper()
	if o.WorkDir == "" {
		o.WorkDir = t.TempDir()
	}
	r := &Reinstall{Options: o}
	r.Namespace = "kubesphere-system"
	if err := r.CheckChart(); err != nil {
		return nil, err
	}
	_, _, info, err := r.loadChart()
	return info, err
}

// wantRefusal: err is a refusal (exit 2 in the CLI) saying want.
func wantRefusal(t *testing.T, err error, want string) {
	t.Helper()
	if _, ok := api.AsRefusal(err); !ok || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want a refusal saying %q", err, want)
	}
}

// counter is a server that counts what it was asked.
func counter(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// Chart references ks-clean does not install from are refused before
// anything is read or fetched.
func TestCheckChartRefusesWhatItDoesNotInstall(t *testing.T) {
	dir := t.TempDir()
	notChart := filepath.Join(dir, "values.yaml")
	os.WriteFile(notChart, []byte("a: 1\n"), 0o600)
	for _, c := range []struct {
		name string
		o    Options
		want string // "" = accepted
	}{
		{"local directory", Options{Chart: miniChart}, ""},
		{"local directory, version checked later", Options{Chart: miniChart, Version: "1.1.5"}, ""},
		{"http", Options{Chart: "http://charts.example/ks-core-1.1.5.tgz", Version: "1.1.5"}, "plain http://"},
		{"HTTP upper case", Options{Chart: "HTTP://charts.example/ks-core-1.1.5.tgz", Version: "1.1.5"}, "plain http://"},
		{"http with --insecure-http", Options{Chart: "http://charts.example/ks-core-1.1.5.tgz", Version: "1.1.5", InsecureHTTP: true}, ""},
		{"https without --version", Options{Chart: "https://charts.example/ks-core-1.1.5.tgz"}, "--version is required"},
		{"oci without --version", Options{Chart: "oci://registry.example/ks/ks-core"}, "--version is required"},
		{"oci with --version", Options{Chart: "oci://registry.example/ks/ks-core", Version: "1.1.5"}, ""},
		{"a version range", Options{Chart: "oci://registry.example/ks/ks-core", Version: "^1.1"}, "not an exact version"},
		{"another scheme", Options{Chart: "ftp://charts.example/ks-core.tgz", Version: "1.1.5"}, "scheme not supported"},
		{"a name from Helm's repository list", Options{Chart: "kubesphere/ks-core", Version: "1.1.5"}, "names from Helm's repository list are not looked up"},
		{"a file that is not a chart archive", Options{Chart: notChart}, "neither a directory nor a .tgz"},
		{"http values file", Options{Chart: miniChart, ValueFiles: []string{"http://values.example/v.yaml"}}, "values file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.o.CheckChart()
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantRefusal(t, err, c.want)
		})
	}
}

// A directory's digest is over its files (the same every time); an
// archive's is the archive's sha256.
func TestChartDigest(t *testing.T) {
	a, err := load(t, Options{Chart: miniChart})
	if err != nil {
		t.Fatal(err)
	}
	b, err := load(t, Options{Chart: miniChart})
	if err != nil {
		t.Fatal(err)
	}
	if a.DigestOf != "files" || !strings.HasPrefix(a.Digest, "sha256:") || a.Digest != b.Digest || a.Name != "ks-core" || a.Version != "1.1.5" {
		t.Fatalf("directory: %+v, then %+v", a, b)
	}
	tgz := packaged(t, t.TempDir())
	c, err := load(t, Options{Chart: tgz})
	if err != nil {
		t.Fatal(err)
	}
	if c.DigestOf != "archive" || c.Digest != sha(t, tgz) || c.Verified {
		t.Fatalf("archive: %+v, want digest %s", c, sha(t, tgz))
	}
	_, err = load(t, Options{Chart: tgz, Version: "1.1.4"})
	wantRefusal(t, err, "not --version 1.1.4")
}

// --verify as Helm's: an archive with a .prov signed by a key of the
// keyring passes; no .prov, another key, or a directory are refused.
func TestVerify(t *testing.T) {
	dir := t.TempDir()
	tgz := packaged(t, dir)
	_, err := load(t, Options{Chart: tgz, Verify: true, Keyring: filepath.Join(dir, "none.gpg")})
	wantRefusal(t, err, "provenance file")

	keyring := sign(t, tgz)
	info, err := load(t, Options{Chart: tgz, Verify: true, Keyring: keyring})
	if err != nil {
		t.Fatalf("signed chart refused: %v", err)
	}
	if !info.Verified || len(info.SignedBy) != 1 || !strings.Contains(info.SignedBy[0], "ks-clean test") || info.Digest != sha(t, tgz) {
		t.Fatalf("verified chart: %+v", info)
	}

	other := sign(t, packaged(t, t.TempDir()))
	_, err = load(t, Options{Chart: tgz, Verify: true, Keyring: other})
	wantRefusal(t, err, "--verify")

	_, err = load(t, Options{Chart: miniChart, Verify: true, Keyring: keyring})
	wantRefusal(t, err, "a directory has none")
}

// An https chart is fetched through a transport that refuses plain http,
// redirects included; --insecure-http allows it. The chart fetched is the
// version asked for, and with --verify its .prov is fetched beside it.
func TestRemoteChart(t *testing.T) {
	dir := t.TempDir()
	tgz := packaged(t, dir)
	keyring := sign(t, tgz)
	files := http.FileServer(http.Dir(dir))
	plain, plainHits := counter(t, files)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/redirect/") {
			http.Redirect(w, r, plain.URL+strings.TrimPrefix(r.URL.Path, "/redirect"), http.StatusFound)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(tlsSrv.Close)
	old := baseTransport
	baseTransport = func() *http.Transport { return tlsSrv.Client().Transport.(*http.Transport) }
	t.Cleanup(func() { baseTransport = old })
	t.Setenv("HELM_REPOSITORY_CONFIG", filepath.Join(t.TempDir(), "repositories.yaml"))
	t.Setenv("HELM_REPOSITORY_CACHE", t.TempDir())

	name := "/" + filepath.Base(tgz)
	info, err := load(t, Options{Chart: tlsSrv.URL + name, Version: "1.1.5", Verify: true, Keyring: keyring})
	if err != nil {
		t.Fatalf("https chart: %v", err)
	}
	if info.Digest != sha(t, tgz) || !info.Verified || info.DigestOf != "archive" {
		t.Fatalf("https chart: %+v", info)
	}
	_, err = load(t, Options{Chart: tlsSrv.URL + name, Version: "1.2.0"})
	wantRefusal(t, err, "not --version 1.2.0")

	_, err = load(t, Options{Chart: tlsSrv.URL + "/redirect" + name, Version: "1.1.5"})
	if err == nil || !strings.Contains(err.Error(), "plain http") {
		t.Fatalf("a redirect to http: err = %v", err)
	}
	if n := plainHits.Load(); n != 0 {
		t.Fatalf("the http server was asked %d times after a redirect from https", n)
	}
	_, err = load(t, Options{Chart: plain.URL + name, Version: "1.1.5"})
	wantRefusal(t, err, "plain http://")
	if n := plainHits.Load(); n != 0 {
		t.Fatalf("the http server was asked %d times for a refused chart", n)
	}
	info, err = load(t, Options{Chart: plain.URL + name, Version: "1.1.5", InsecureHTTP: true})
	if err != nil || info.Digest != sha(t, tgz) {
		t.Fatalf("--insecure-http: %v %+v", err, info)
	}
}

// A chart's dependencies are never downloaded: a chart that does not carry
// them is refused, and their repository is never asked.
func TestMissingDependenciesAreNotDownloaded(t *testing.T) {
	repo, hits := counter(t, http.NotFoundHandler())
	dir := filepath.Join(t.TempDir(), "ks-core")
	os.MkdirAll(filepath.Join(dir, "templates"), 0o700)
	os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte("apiVersion: v2\nname: ks-core\nversion: 1.1.5\ndependencies:\n- name: extra\n  version: 1.0.0\n  repository: "+repo.URL+"\n"), 0o600)
	_, err := load(t, Options{Chart: dir})
	wantRefusal(t, err, "never downloads")
	if n := hits.Load(); n != 0 {
		t.Fatalf("the dependency's repository was asked %d times", n)
	}
}

// --work-dir: made 0700 (created so, or tightened when it is the user's
// own); a symlink, a file, and a directory of another user are refused.
func TestPrivateDir(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "a", "work")
	if err := privateDir("work directory", fresh, "fix"); err != nil {
		t.Fatal(err)
	}
	wide := filepath.Join(base, "wide")
	os.Mkdir(wide, 0o777)
	os.Chmod(wide, 0o777)
	if err := privateDir("work directory", wide, "fix"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{fresh, wide} {
		if fi, err := os.Lstat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %v %v, want mode 0700", d, err, fi.Mode())
		}
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(wide, link); err != nil {
		t.Fatal(err)
	}
	wantRefusal(t, privateDir("work directory", link, "give another with --work-dir"), "work directory "+link+" is a symbolic link")
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	wantRefusal(t, privateDir("work directory", file, "fix"), "is not a directory")
	if os.Getuid() == 0 {
		// Another user's directory: root can make one.
		theirs := filepath.Join(base, "theirs")
		os.Mkdir(theirs, 0o700)
		if err := os.Chown(theirs, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		wantRefusal(t, privateDir("work directory", theirs, "fix"), "belongs to user 4242")
	}
}
