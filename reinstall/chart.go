package reinstall

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	helmcli "helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/downloader"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/provenance"
	"helm.sh/helm/v3/pkg/registry"

	"github.com/ks-clean/ks-clean/api"
)

// ChartInfo says which chart a reinstall installs (or rendered): what was
// asked for, what was loaded, and how it was checked.
type ChartInfo struct {
	// Reference is --chart as given.
	Reference  string `json:"reference"`
	Name       string `json:"name"`
	Version    string `json:"version"`
	AppVersion string `json:"appVersion,omitempty"`
	// Digest is "sha256:HEX". Of a chart archive (a local .tgz, or the
	// archive downloaded from an https:// URL or an oci:// registry) it is
	// the archive's own sha256, as sha256sum and a .prov file give it; of
	// a chart directory it is the sha256 over the files Helm loads from it
	// (each file's path and content, sorted by path; .helmignore applied),
	// which is not the digest of a 'helm package' archive. DigestOf says
	// which: "archive" or "files".
	Digest   string `json:"digest"`
	DigestOf string `json:"digestOf"`
	// Verified: --verify checked the archive against its provenance file
	// with a key of --keyring; SignedBy are that key's identities.
	Verified bool     `json:"verified"`
	SignedBy []string `json:"signedBy,omitempty"`
}

// chartKind is what a --chart reference names.
type chartKind int

const (
	chartLocal chartKind = iota // a directory or an archive on this machine
	chartHTTPS                  // an https:// URL to an archive
	chartHTTP                   // an http:// URL (--insecure-http only)
	chartOCI                    // an oci:// reference
)

// exactVersion is a SemVer 2 version: --version pins one chart, never a
// range Helm would resolve to whatever the repository has today.
var exactVersion = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// CheckChart refuses, before anything is read or fetched, a chart
// reference ks-clean does not install from: plain http:// (unless
// --insecure-http), another scheme, a name from Helm's repository list, a
// local path that is missing or neither a directory nor a .tgz; and a
// repository or registry chart without an exact --version.
func (o *Options) CheckChart() error {
	kind, err := classify(o.Chart, o.InsecureHTTP)
	if err != nil {
		return err
	}
	if kind != chartLocal && o.Version == "" {
		return api.Refuse(api.FixNone, "chart %s: --version is required for a chart fetched from a repository or registry: name the exact chart version to install (such as --version 1.1.3), so that what is installed is what was reviewed", o.Chart)
	}
	if o.Version != "" && !exactVersion.MatchString(o.Version) {
		return api.Refuse(api.FixNone, "--version %q is not an exact version: give one such as 1.1.3 (ks-clean installs exactly the version named, never a range)", o.Version)
	}
	for _, f := range o.ValueFiles {
		if hasScheme(f, "http") && !o.InsecureHTTP {
			return api.Refuse(api.FixNone, "values file %s is fetched over plain http://, where anyone on the path can change it: use https://, a local copy, or --insecure-http", f)
		}
	}
	return nil
}

func hasScheme(ref, scheme string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(ref)), scheme+"://")
}

func classify(ref string, insecureHTTP bool) (chartKind, error) {
	const kinds = "give a chart directory, a .tgz, an https:// URL to a .tgz, or oci://REGISTRY/REPO with --version"
	ref = strings.TrimSpace(ref)
	switch {
	case hasScheme(ref, registry.OCIScheme):
		return chartOCI, nil
	case hasScheme(ref, "https"):
		return chartHTTPS, nil
	case hasScheme(ref, "http"):
		if !insecureHTTP {
			return 0, api.Refuse(api.FixNone, "chart %s is fetched over plain http://, where anyone on the path can replace it with another chart: use https:// or oci://, or a local copy; pass --insecure-http only if you must", ref)
		}
		return chartHTTP, nil
	case strings.Contains(ref, "://"):
		return 0, api.Refuse(api.FixNone, "chart %s: scheme not supported: %s", ref, kinds)
	}
	fi, err := os.Stat(ref)
	if err != nil {
		// Helm would look a missing path up as REPO/CHART in its repository
		// list, whose repositories may be plain http: ks-clean does not.
		return 0, api.Refuse(api.FixNone, "chart %s: %w (%s; names from Helm's repository list are not looked up)", ref, err, kinds)
	}
	if !fi.IsDir() && !isArchive(ref) {
		return 0, api.Refuse(api.FixNone, "chart %s is neither a directory nor a .tgz: %s", ref, kinds)
	}
	return chartLocal, nil
}

func isArchive(path string) bool {
	l := strings.ToLower(path)
	return strings.HasSuffix(l, ".tgz") || strings.HasSuffix(l, ".tar.gz")
}

// keyring is --keyring, else Helm's default: the user's GnuPG public keyring.
func (o *Options) keyring() string {
	if o.Keyring != "" {
		return o.Keyring
	}
	if v, ok := os.LookupEnv("GNUPGHOME"); ok {
		return filepath.Join(v, "pubring.gpg")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".gnupg", "pubring.gpg")
}

// loadChart fetches (into a private directory under WorkDir, removed after)
// or opens the chart, verifies its provenance with --verify, loads it,
// checks it is the --version asked for and carries its dependencies, and
// merges the values.
func (r *Reinstall) loadChart() (*chart.Chart, map[string]any, *ChartInfo, error) {
	kind, err := classify(r.Chart, r.InsecureHTTP)
	if err != nil {
		return nil, nil, nil, err
	}
	settings := helmcli.New()
	settings.SetNamespace(r.Namespace)
	tr := chartTransport(baseTransport(), r.InsecureHTTP)
	rc, err := registry.NewClient(registry.ClientOptHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		return nil, nil, nil, err
	}
	gets := getters(tr, rc, r.InsecureHTTP)
	info := &ChartInfo{Reference: r.Chart}

	path := strings.TrimSpace(r.Chart)
	if kind == chartLocal {
		if path, err = filepath.Abs(path); err != nil {
			return nil, nil, nil, err
		}
	} else {
		dir, err := os.MkdirTemp(r.WorkDir, ".chart-")
		if err != nil {
			return nil, nil, nil, fmt.Errorf("download chart %s: %w", r.Chart, err)
		}
		defer os.RemoveAll(dir)
		dl := downloader.ChartDownloader{
			Out:     io.Discard,
			Keyring: r.keyring(),
			Getters: gets,
			// The chart and its .prov, if any; verified below, as a
			// local archive is, so a missing .prov is refused alike.
			Verify:           downloader.VerifyNever,
			RegistryClient:   rc,
			RepositoryConfig: settings.RepositoryConfig,
			RepositoryCache:  settings.RepositoryCache,
		}
		if r.Verify {
			dl.Verify = downloader.VerifyLater
		}
		if kind == chartOCI {
			dl.Options = append(dl.Options, getter.WithRegistryClient(rc))
		}
		if path, _, err = dl.DownloadTo(strings.TrimSpace(r.Chart), r.Version, dir); err != nil {
			return nil, nil, nil, fmt.Errorf("download chart %s version %s: %w", r.Chart, r.Version, err)
		}
	}

	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, nil, api.Refuse(api.FixNone, "chart %s: %w", r.Chart, err)
	}
	if r.Verify {
		if fi.IsDir() {
			return nil, nil, nil, api.Refuse(api.FixNone, "chart %s: --verify checks a chart archive against its provenance file; a directory has none: give the signed .tgz (with its .prov beside it), or leave out --verify", r.Chart)
		}
		v, err := downloader.VerifyChart(path, r.keyring())
		if err != nil {
			return nil, nil, nil, api.Refuse(api.FixNone, "chart %s: --verify: %w: give a chart signed by a key of the keyring %s (its .prov beside the .tgz, or served beside it), another --keyring, or leave out --verify", r.Chart, err, r.keyring())
		}
		info.Verified, info.SignedBy = true, signers(v)
	}

	ch, err := loader.Load(path)
	if err != nil {
		return nil, nil, nil, api.Refuse(api.FixNone, "load chart %s: %w", r.Chart, err)
	}
	if fi.IsDir() {
		info.Digest, info.DigestOf = filesDigest(ch), "files"
	} else {
		if info.Digest, err = archiveDigest(path); err != nil {
			return nil, nil, nil, err
		}
		info.DigestOf = "archive"
	}
	info.Name, info.Version, info.AppVersion = ch.Metadata.Name, ch.Metadata.Version, ch.Metadata.AppVersion
	if r.Version != "" && strings.TrimPrefix(ch.Metadata.Version, "v") != strings.TrimPrefix(r.Version, "v") {
		return nil, nil, nil, api.Refuse(api.FixNone, "chart %s is %s version %s, not --version %s: give the chart of that version, or the --version of this one", r.Chart, ch.Metadata.Name, ch.Metadata.Version, r.Version)
	}
	// Helm's install command downloads missing dependencies only when
	// asked (--dependency-update); the SDK's Install never does. ks-clean
	// installs only what the chart carries, so one it does not is refused
	// here rather than installed without them.
	if deps := ch.Metadata.Dependencies; len(deps) > 0 {
		if err := action.CheckDependencies(ch, deps); err != nil {
			return nil, nil, nil, api.Refuse(api.FixNone, "chart %s: %w: ks-clean never downloads a chart's dependencies: build them into the chart first (helm dependency build), then give that chart", r.Chart, err)
		}
	}

	vo := values.Options{ValueFiles: r.ValueFiles, Values: r.Set}
	vals, err := vo.MergeValues(gets)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("values: %w", err)
	}
	return ch, vals, info, nil
}

// baseTransport is what chartTransport starts from (tests trust their own
// TLS servers through it).
var baseTransport = func() *http.Transport { return http.DefaultTransport.(*http.Transport) }

// chartTransport is base for fetching charts and values: plain http is
// refused (a redirect from https included) unless insecureHTTP, and no
// option of Helm's (a repository's insecure_skip_tls_verify) can loosen its
// TLS: Helm's getters use a transport given to them as it is.
func chartTransport(base *http.Transport, insecureHTTP bool) *http.Transport {
	t := base.Clone()
	t.DisableCompression = true // charts are gzipped already; Helm does the same
	if !insecureHTTP {
		t.RegisterProtocol("http", refuseHTTP{})
	}
	return t
}

// refuseHTTP answers every plain http request with a refusal, before any
// connection is made.
type refuseHTTP struct{}

func (refuseHTTP) RoundTrip(req *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("refused to fetch %s over plain http:// (charts and values are fetched over https only; --insecure-http allows http)", req.URL.Redacted())
}

// getters fetch https (and http with --insecure-http) through tr, and oci
// through rc: Helm's own getters, on ks-clean's transport.
func getters(tr *http.Transport, rc *registry.Client, insecureHTTP bool) getter.Providers {
	schemes := []string{"https"}
	if insecureHTTP {
		schemes = append(schemes, "http")
	}
	return getter.Providers{
		{Schemes: schemes, New: func(o ...getter.Option) (getter.Getter, error) {
			return getter.NewHTTPGetter(append([]getter.Option{getter.WithTransport(tr), getter.WithTimeout(5 * time.Minute)}, o...)...)
		}},
		{Schemes: []string{registry.OCIScheme}, New: func(o ...getter.Option) (getter.Getter, error) {
			return getter.NewOCIGetter(append([]getter.Option{getter.WithRegistryClient(rc)}, o...)...)
		}},
	}
}

func archiveDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("digest of chart %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("digest of chart %s: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// filesDigest is the sha256 over a loaded chart directory's files: each
// path and content, length-prefixed so no two charts share the stream.
func filesDigest(ch *chart.Chart) string {
	files := append([]*chart.File{}, ch.Raw...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%d:%s%d:", len(f.Name), f.Name, len(f.Data))
		h.Write(f.Data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func signers(v *provenance.Verification) []string {
	if v == nil || v.SignedBy == nil {
		return nil
	}
	var out []string
	for name := range v.SignedBy.Identities {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
