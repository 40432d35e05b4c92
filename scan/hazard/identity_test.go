package hazard

import (
	"context"
	"testing"
)

// Endpoint comparison is the fallback when a record cannot be reached: two
// URL strings for one API server must compare equal, different servers not.
func TestEndpointSame(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		a, b string
		same bool
	}{
		{"https://localhost:6443", "https://127.0.0.1:6443/", true},
		{"https://LOCALHOST:6443", "https://localhost:6443", true},
		{"https://10.0.0.1", "https://10.0.0.1:443", true},
		{"https://10.0.0.1:6443", "https://10.0.0.2:6443", false},
		{"https://127.0.0.1:6443", "https://127.0.0.1:6444", false},
		{"https://127.0.0.1:6443", "http://127.0.0.1:6443", false},
	}
	for _, c := range cases {
		if got := NormalizeEndpoint(ctx, c.a).Same(NormalizeEndpoint(ctx, c.b)); got != c.same {
			t.Errorf("%s vs %s: same=%v, want %v", c.a, c.b, got, c.same)
		}
	}
}

// A server outside the tested range is named, with the way to check it
// first; one inside it, or a version not understood, is not.
func TestUntestedKubernetes(t *testing.T) {
	for v, want := range map[string]bool{
		"v1.21.14": true, "v1.35.0": true, "v1.19.16+k3s1": true,
		"v1.22.17": false, "v1.34.4": false, "v1.28.15-eks-abc": false, "": false, "dev": false,
	} {
		got := untestedKubernetes(v)
		if (len(got) == 1) != want || (want && got[0].ID != UntestedKubernetes) {
			t.Errorf("%q: %+v, want a finding %v", v, got, want)
		}
	}
}
