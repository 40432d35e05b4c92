package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ks-clean/ks-clean/scan/hazard"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// recorder is an API server stand-in that records every request it gets and
// the Authorization header each carried.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string
}

func newRecorder(t *testing.T, tls bool) *recorder {
	r := &recorder{}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
	})
	if tls {
		r.Server = httptest.NewTLSServer(h)
	} else {
		r.Server = httptest.NewServer(h)
	}
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auth...)
}

// caOf is the PEM of a TLS recorder's certificate, so that a client that
// trusts what a record says would really reach it.
func caOf(r *recorder) []byte {
	return pemCert(r.Certificate().Raw)
}

func pemCert(der []byte) []byte {
	return []byte("-----BEGIN CERTIFICATE-----\n" + wrap64(base64.StdEncoding.EncodeToString(der)) + "-----END CERTIFICATE-----\n")
}

func wrap64(s string) string {
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	return b.String() + s + "\n"
}

// recordKubeconfig is a kubeconfig as a Cluster record stores it, with one
// cluster, user and context.
func recordKubeconfig(t *testing.T, server string, ca []byte, user *clientcmdapi.AuthInfo) []byte {
	t.Helper()
	c := clientcmdapi.NewConfig()
	c.Clusters["member"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	c.AuthInfos["member"] = user
	c.Contexts["member"] = &clientcmdapi.Context{Cluster: "member", AuthInfo: "member"}
	c.CurrentContext = "member"
	b, err := clientcmd.Write(*c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// closedPort is an https URL on this machine where nothing listens.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "https://" + addr
}

// Credentials in cluster records are data, never code (issue 22, items 1
// and 6). A KubeSphere Cluster record whose kubeconfig runs an exec plugin,
// one that names a local token file, and a KubeFedCluster over http are
// each reported and never used, through every command that scans; and no
// level of -v prints a Secret's data or a stored kubeconfig.
func TestClusterRecordCredentialsAreData(t *testing.T) {
	st := fixture.Start(t, "ks33-host", controlplane.Options{Audit: true}, false)
	ctx := context.Background()
	dir := t.TempDir()
	kc := st.CP.AdminKubeconfig

	// The exec plugin would leave this file behind; the token file is a
	// local secret (in a Job: the pod's own service-account token).
	sentinel := filepath.Join(dir, "exec-plugin-ran")
	tokenFile := filepath.Join(dir, "local-token")
	const localToken = "local-token-never-sent-3f9a"
	if err := os.WriteFile(tokenFile, []byte(localToken), 0o600); err != nil {
		t.Fatal(err)
	}
	execSrv, fileSrv, kubeFedSrv := newRecorder(t, true), newRecorder(t, true), newRecorder(t, false)
	execKC := recordKubeconfig(t, execSrv.URL, caOf(execSrv), &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{
		APIVersion: "client.authentication.k8s.io/v1", Command: "/bin/sh", InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
		Args: []string{"-c", "touch " + sentinel + `; echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"x"}}'`},
	}})
	fileKC := recordKubeconfig(t, fileSrv.URL, caOf(fileSrv), &clientcmdapi.AuthInfo{TokenFile: tokenFile})
	// A record as KubeSphere writes it, whose token must not show at -v=9.
	const recordToken = "record-token-sentinel-7c1e"
	safeKC := recordKubeconfig(t, closedPort(t), st.CA, &clientcmdapi.AuthInfo{Token: recordToken})
	const kubeFedToken = "kubefed-token-sentinel-5b2d"
	for _, err := range []error{
		st.ClusterRecord(ctx, "evil-exec", execSrv.URL, execKC),
		st.ClusterRecord(ctx, "evil-tokenfile", fileSrv.URL, fileKC),
		// First by name: within the 10 KiB of a body client-go logs at -v=9.
		st.ClusterRecord(ctx, "a-member-inline", "", safeKC),
		st.KubeFedRecord(ctx, "evil-http", kubeFedSrv.URL, kubeFedToken),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	untouched := func(t *testing.T, what string) {
		t.Helper()
		if _, err := os.Stat(sentinel); !os.IsNotExist(err) {
			t.Fatalf("%s: the exec plugin of a Cluster record ran (%s exists: %v)", what, sentinel, err)
		}
		for name, srv := range map[string]*recorder{"exec record's": execSrv, "tokenFile record's": fileSrv, "http KubeFedCluster's": kubeFedSrv} {
			if got := srv.requests(); len(got) > 0 {
				t.Fatalf("%s: the %s endpoint was sent %d requests (Authorization %q)", what, name, len(got), got)
			}
		}
	}

	planFile := filepath.Join(dir, "plan.json")
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	chart, err := filepath.Abs("../../test/charts/ks-core-mini")
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, tc := range []struct {
		args []string
		// finding: the output names the finding and each record
		finding bool
		// anyExit: the command may refuse for another reason (after its
		// scan), as tenancy import does on this cluster's critical hazards
		anyExit bool
	}{
		{args: []string{"scan"}, finding: true},
		{args: []string{"scan", "-o", "json"}, finding: true},
		{args: []string{"plan", "--out", planFile}, finding: true},
		{args: []string{"apply", planFile, "--dry-run"}},
		{args: []string{"reinstall", "--chart", chart, "--dry-run", "--work-dir", filepath.Join(dir, "work")}},
		{args: []string{"tenancy", "import", filepath.Join(dir, "tenancy.yaml"), "--dry-run"}, anyExit: true},
	} {
		name := strings.Join(tc.args[:1], " ")
		if tc.args[0] == "tenancy" {
			if _, errOut, code := runCLI(t, "--kubeconfig", kc, "tenancy", "export", "--out", filepath.Join(dir, "tenancy.yaml")); code != 0 {
				t.Fatalf("tenancy export: %s", errOut)
			}
		}
		mark := st.CP.AuditMark()
		out, errOut, code := runCLI(t, append([]string{"--kubeconfig", kc}, tc.args...)...)
		all.WriteString(out + errOut)
		if !tc.anyExit && code != 0 && code != 3 {
			t.Fatalf("%v: exit %d\n%s\n%s", tc.args, code, out, errOut)
		}
		untouched(t, name)
		noWritesSince(t, st.CP, mark, strings.Join(tc.args, " "))
		if !tc.finding {
			continue
		}
		text := out
		if tc.args[0] == "plan" {
			b, err := os.ReadFile(planFile)
			if err != nil {
				t.Fatal(err)
			}
			text = string(b)
		}
		for _, want := range []string{
			"Cluster evil-exec: its kubeconfig in spec.connection holds exec;",
			"Cluster evil-tokenfile: its kubeconfig in spec.connection holds tokenFile (a file path);",
			"KubeFedCluster evil-http: its spec holds apiEndpoint (not an https URL);",
		} {
			if !strings.Contains(strings.ReplaceAll(text, "\n", " "), want) {
				t.Errorf("%v: no %s finding %q in:\n%s", tc.args, hazard.ClusterCredentialsUnsafe, want, text)
			}
		}
		if tc.args[len(tc.args)-1] == "json" {
			var rep struct {
				Findings []struct{ ID, Severity string }
				Clusters []struct {
					Findings []struct{ ID, Severity string }
				}
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, c := range rep.Clusters {
				for _, f := range c.Findings {
					if f.ID == hazard.ClusterCredentialsUnsafe && f.Severity == "warning" {
						n++
					}
				}
			}
			if n != 3 {
				t.Errorf("scan -o json: %d %s warnings, want 3", n, hazard.ClusterCredentialsUnsafe)
			}
		}
	}
	if strings.Contains(all.String(), localToken) || strings.Contains(all.String(), "touch "+sentinel) {
		t.Errorf("a value of an unsafe record is printed")
	}

	// -v=9 logs each request as a curl command line with its headers;
	// -v=10 would log whole bodies. Neither prints a Secret's data or a
	// stored kubeconfig.
	t.Run("verbose", func(t *testing.T) {
		secrets, err := st.Kube.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var values []string
		for _, s := range secrets.Items {
			for _, v := range s.Data {
				if len(v) >= 8 {
					values = append(values, string(v), base64.StdEncoding.EncodeToString(v))
				}
			}
		}
		if len(st.Seeded.SecretValues) < 3 || len(values) < 2*len(st.Seeded.SecretValues) {
			t.Fatalf("%d Secret values in the cluster, %d seeded: the test needs some to look for", len(values)/2, len(st.Seeded.SecretValues))
		}
		values = append(values, recordToken, base64.StdEncoding.EncodeToString(safeKC), kubeFedToken)
		for _, args := range [][]string{
			{"scan", "-v=9"}, {"plan", "-v=9", "--out", filepath.Join(dir, "plan9.json")}, {"scan", "-v=10", "-o", "json"},
		} {
			out, errOut, code := runCLI(t, append([]string{"--kubeconfig", kc}, args...)...)
			if code != 0 && code != 3 {
				t.Fatalf("%v: exit %d\n%s", args, code, errOut)
			}
			for _, v := range values {
				if strings.Contains(out+errOut, v) {
					t.Errorf("%v prints a Secret's data or a stored kubeconfig (%d characters of it)", args, len(v))
				}
			}
			// Still a debugging aid: requests as curl lines, credentials
			// masked, bodies replaced.
			for _, want := range []string{"curl -v -X", "Bearer <masked>", bodyRedacted} {
				if !strings.Contains(errOut, want) {
					t.Errorf("%v: the log lacks %q", args, want)
				}
			}
		}
	})
}

// The filter replaces any structured "body" value, whatever the message.
func TestRedactBodies(t *testing.T) {
	kv := []any{"verb", "GET", "body", `{"kind":"Secret","data":{"password":"czNjcjN0"}}`}
	msg, got := redactBodies{}.FilterS("Response Body", kv)
	if msg != "Response Body" || got[1] != "GET" || got[3] != bodyRedacted || kv[3] == bodyRedacted {
		t.Fatalf("FilterS: %q %v (input %v)", msg, got, kv)
	}
	if _, got := (redactBodies{}).FilterS("Request", []any{"url", "https://x"}); got[1] != "https://x" {
		t.Fatalf("FilterS changed a message without a body: %v", got)
	}
}
