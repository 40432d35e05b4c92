package hazard

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ks-clean/ks-clean/api"
)

// Credentials stored in cluster records are data written by whoever could
// write the record, never code or a reference to this machine: ks-clean
// connects with inline credentials only (a bearer token, client certificate
// and key data, CA data) over https. clientcmd's loaders would run an exec
// plugin or auth provider, read token, certificate and CA files, go through
// a proxy, skip TLS verification, send a password or impersonate, as the
// record says, on the operator's machine or in the Job's pod (whose own
// service-account token a tokenFile would send away). So records are parsed
// with clientcmd.Load only, and every one of those fields makes the record
// a finding that is never connected to.

// unsafeCredentials lists what a kubeconfig stored in a record holds that
// ks-clean never uses, by field name (never a value), over every cluster and
// user in it, not only the current context's: nothing of the kind belongs in
// a record KubeSphere wrote.
func unsafeCredentials(kc *clientcmdapi.Config) []string {
	set := map[string]bool{}
	for _, c := range kc.Clusters {
		if c == nil {
			continue
		}
		if !httpsURL(c.Server) {
			set["server (not an https URL)"] = true
		}
		if c.InsecureSkipTLSVerify {
			set["insecure-skip-tls-verify"] = true
		}
		if c.CertificateAuthority != "" {
			set["certificate-authority (a file path)"] = true
		}
		if c.ProxyURL != "" {
			set["proxy-url"] = true
		}
	}
	for _, u := range kc.AuthInfos {
		if u == nil {
			continue
		}
		for field, present := range map[string]bool{
			"exec":                             u.Exec != nil,
			"auth-provider":                    u.AuthProvider != nil,
			"tokenFile (a file path)":          u.TokenFile != "",
			"client-certificate (a file path)": u.ClientCertificate != "",
			"client-key (a file path)":         u.ClientKey != "",
			"username":                         u.Username != "",
			"password":                         u.Password != "",
			"act-as (impersonation)":           u.Impersonate != "" || u.ImpersonateUID != "" || len(u.ImpersonateGroups) > 0 || len(u.ImpersonateUserExtra) > 0,
		} {
			if present {
				set[field] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

func httpsURL(s string) bool {
	u, err := url.Parse(strings.TrimSpace(s))
	return err == nil && u.Scheme == "https" && u.Host != ""
}

// recordConfig reads a kubeconfig stored in a record. It returns the
// current context's server (for endpoint matching, even when the record is
// not used), and either the rest.Config to reach it with, or the unsafe
// fields that keep ks-clean from using it.
//
// tls-server-name is honoured: it only changes the name the server's
// certificate is checked against, with the CA the same record supplies, so
// it reads nothing of this machine and sends nothing the record did not
// already hold.
func recordConfig(raw []byte) (cfg *rest.Config, server string, unsafe []string, err error) {
	kc, err := clientcmd.Load(raw)
	if err != nil {
		return nil, "", nil, fmt.Errorf("does not parse as a kubeconfig: %w", err)
	}
	name := kc.CurrentContext
	if name == "" && len(kc.Contexts) == 1 {
		for n := range kc.Contexts {
			name = n
		}
	}
	ctx := kc.Contexts[name]
	if ctx == nil {
		return nil, "", nil, errors.New("names no current-context")
	}
	cluster := kc.Clusters[ctx.Cluster]
	if cluster == nil {
		return nil, "", nil, fmt.Errorf("context %q names a cluster the kubeconfig does not define", name)
	}
	if unsafe = unsafeCredentials(kc); len(unsafe) > 0 {
		return nil, cluster.Server, unsafe, nil
	}
	user := &clientcmdapi.AuthInfo{}
	if ctx.AuthInfo != "" {
		if user = kc.AuthInfos[ctx.AuthInfo]; user == nil {
			return nil, cluster.Server, nil, fmt.Errorf("context %q names a user the kubeconfig does not define", name)
		}
	}
	cfg = &rest.Config{
		Host:        cluster.Server,
		BearerToken: user.Token,
		TLSClientConfig: rest.TLSClientConfig{
			ServerName: cluster.TLSServerName,
			CAData:     cluster.CertificateAuthorityData,
			CertData:   user.ClientCertificateData,
			KeyData:    user.ClientKeyData,
		},
	}
	return cfg, cluster.Server, nil, inlineOnly(cfg)
}

// inlineOnly checks, just before a record's config is used, that it can run
// nothing, read no local file, go through no proxy and skips no TLS check:
// whatever builds a record's config, this is what is connected with.
func inlineOnly(cfg *rest.Config) error {
	var bad []string
	for what, set := range map[string]bool{
		"an exec plugin":                cfg.ExecProvider != nil,
		"an auth provider":              cfg.AuthProvider != nil,
		"a token file":                  cfg.BearerTokenFile != "",
		"a certificate or key file":     cfg.CertFile != "" || cfg.KeyFile != "" || cfg.CAFile != "",
		"insecure TLS":                  cfg.Insecure,
		"a proxy":                       cfg.Proxy != nil,
		"basic auth":                    cfg.Username != "" || cfg.Password != "",
		"impersonation":                 cfg.Impersonate.UserName != "" || cfg.Impersonate.UID != "" || len(cfg.Impersonate.Groups) > 0 || len(cfg.Impersonate.Extra) > 0,
		"a transport or dial function":  cfg.Transport != nil || cfg.WrapTransport != nil || cfg.Dial != nil,
		"an endpoint that is not https": !httpsURL(cfg.Host),
	} {
		if set {
			bad = append(bad, what)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("its connection would use %s, which ks-clean never uses for a cluster record", strings.Join(bad, ", "))
	}
	return nil
}

// ClusterCredentialsUnsafe: a cluster record holds credentials or settings
// ks-clean never uses; the record is not connected to.
const ClusterCredentialsUnsafe = "cluster-record-unsafe-credentials"

// unsafeRecords reports each record that was not connected to because of
// what its credentials hold.
func unsafeRecords(records []*Record) []api.Finding {
	var out []api.Finding
	for _, r := range records {
		if len(r.unsafe) == 0 {
			continue
		}
		out = append(out, api.Finding{
			ID: ClusterCredentialsUnsafe, Severity: api.Warning,
			Message: fmt.Sprintf("%s %s: its %s holds %s; ks-clean connects to a cluster record only with inline credentials (token, client certificate and key data, CA data) over https, so it did not use this record: no plugin was run, no local file read, nothing sent. Its identity is not verified, so it is matched to clusters by its endpoint only. KubeSphere and KubeFed write none of these: check who wrote the record",
				r.Obj.Resource.Kind, r.Obj.GetName(), r.unsafeWhere, strings.Join(r.unsafe, ", ")),
			Objects: refs(r.Obj),
		})
	}
	return out
}
