package hazard

import (
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func storedKubeconfig(t *testing.T, edit func(*clientcmdapi.Cluster, *clientcmdapi.AuthInfo)) []byte {
	t.Helper()
	c := clientcmdapi.NewConfig()
	cl := &clientcmdapi.Cluster{Server: "https://10.0.0.9:6443", CertificateAuthorityData: []byte("CA"), TLSServerName: "kubernetes"}
	u := &clientcmdapi.AuthInfo{Token: "tok", ClientCertificateData: []byte("CERT"), ClientKeyData: []byte("KEY")}
	if edit != nil {
		edit(cl, u)
	}
	c.Clusters["m"], c.AuthInfos["m"] = cl, u
	c.Contexts["m"] = &clientcmdapi.Context{Cluster: "m", AuthInfo: "m"}
	c.CurrentContext = "m"
	b, err := clientcmd.Write(*c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A record's kubeconfig yields inline credentials only; anything that would
// run, read a local file, go through a proxy or weaken TLS makes the record
// unused, and names the field, never its value.
func TestRecordConfigInlineOnly(t *testing.T) {
	cfg, server, unsafe, err := recordConfig(storedKubeconfig(t, nil))
	if err != nil || len(unsafe) > 0 || server != "https://10.0.0.9:6443" {
		t.Fatalf("inline kubeconfig: %v %v %q", err, unsafe, server)
	}
	if cfg.Host != server || cfg.BearerToken != "tok" || string(cfg.CAData) != "CA" || string(cfg.CertData) != "CERT" || string(cfg.KeyData) != "KEY" || cfg.ServerName != "kubernetes" ||
		cfg.ExecProvider != nil || cfg.AuthProvider != nil || cfg.BearerTokenFile != "" || cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "" ||
		cfg.Insecure || cfg.Proxy != nil || cfg.Username != "" || cfg.Password != "" || cfg.Impersonate.UserName != "" {
		t.Fatalf("config: %+v", cfg)
	}

	for _, tc := range []struct {
		field string
		edit  func(*clientcmdapi.Cluster, *clientcmdapi.AuthInfo)
	}{
		{"exec", func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
			u.Exec = &clientcmdapi.ExecConfig{Command: "/bin/sh", Args: []string{"-c", "touch /tmp/secret-value-x"}, APIVersion: "client.authentication.k8s.io/v1", InteractiveMode: clientcmdapi.NeverExecInteractiveMode}
		}},
		{"auth-provider", func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
			u.AuthProvider = &clientcmdapi.AuthProviderConfig{Name: "oidc", Config: map[string]string{"secret-value-x": "1"}}
		}},
		{"tokenFile", func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
			u.TokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
		}},
		{"client-certificate", func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) { u.ClientCertificate = "/etc/secret-value-x" }},
		{"client-key", func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) { u.ClientKey = "/etc/secret-value-x" }},
		{"certificate-authority", func(c *clientcmdapi.Cluster, _ *clientcmdapi.AuthInfo) {
			c.CertificateAuthority = "/etc/secret-value-x"
		}},
		{"insecure-skip-tls-verify", func(c *clientcmdapi.Cluster, _ *clientcmdapi.AuthInfo) {
			c.InsecureSkipTLSVerify, c.CertificateAuthorityData = true, nil
		}},
		{"proxy-url", func(c *clientcmdapi.Cluster, _ *clientcmdapi.AuthInfo) { c.ProxyURL = "http://secret-value-x:3128" }},
		{"server (not an https URL)", func(c *clientcmdapi.Cluster, _ *clientcmdapi.AuthInfo) { c.Server = "http://secret-value-x:6443" }},
		{"username", func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) { u.Username = "secret-value-x" }},
		{"password", func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) { u.Password = "secret-value-x" }},
		{"act-as", func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) { u.Impersonate = "secret-value-x" }},
		{"act-as", func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
			u.ImpersonateGroups = []string{"system:masters"}
		}},
	} {
		cfg, _, unsafe, err := recordConfig(storedKubeconfig(t, tc.edit))
		joined := strings.Join(unsafe, ", ")
		if cfg != nil || err != nil || !strings.Contains(joined, tc.field) || strings.Contains(joined, "secret-value-x") {
			t.Errorf("%s: config %v, err %v, unsafe %q", tc.field, cfg != nil, err, joined)
		}
	}
}

// An unsafe field anywhere in the stored kubeconfig counts, not only in the
// current context's user: nothing of the kind belongs in a record.
func TestRecordConfigUnsafeInAnyEntry(t *testing.T) {
	c, err := clientcmd.Load(storedKubeconfig(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	c.AuthInfos["other"] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{Command: "true", APIVersion: "client.authentication.k8s.io/v1"}}
	b, err := clientcmd.Write(*c)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, _, unsafe, _ := recordConfig(b); cfg != nil || len(unsafe) != 1 || unsafe[0] != "exec" {
		t.Fatalf("config %v, unsafe %v", cfg != nil, unsafe)
	}
}

func TestInlineOnlyRefusesWhatWasNotInline(t *testing.T) {
	cfg, _, _, err := recordConfig(storedKubeconfig(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := inlineOnly(cfg); err != nil {
		t.Fatalf("inline config refused: %v", err)
	}
	bad := *cfg
	bad.BearerTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	bad.Host = "http://10.0.0.9"
	if err := inlineOnly(&bad); err == nil || !strings.Contains(err.Error(), "a token file") || !strings.Contains(err.Error(), "not https") {
		t.Fatalf("inlineOnly: %v", err)
	}
}
