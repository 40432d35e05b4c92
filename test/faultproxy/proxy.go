// Package faultproxy sits between ks-clean and a test apiserver and, on a
// seeded schedule, answers 429 (with Retry-After), 500 or 503, resets
// connections or adds latency. Clients talk plain HTTP to it; it forwards
// with the credentials it was given. Loopback only.
package faultproxy

import (
	"context"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
)

// Fault counts what was injected.
type Fault struct {
	TooMany, Internal, Unavailable, Reset, Slow int64
	// Watches counts watch requests; every one is cut after a random
	// 50-500 ms while faults are on (WatchDropped), as a load balancer or
	// an apiserver restart does.
	Watches, WatchDropped int64
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	URL string
	// Rate is the share of requests that get a fault (0..1).
	Rate float64

	enabled atomic.Bool
	mu      sync.Mutex
	rnd     *rand.Rand
	faults  Fault
	srv     *http.Server
	ln      net.Listener
}

// Start proxies to the apiserver of cfg, with faults from seed.
func Start(cfg *rest.Config, seed int64, rate float64) (*Proxy, error) {
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, err
	}
	tr, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{URL: "http://" + ln.Addr().String(), Rate: rate, rnd: rand.New(rand.NewSource(seed)), ln: ln}
	p.enabled.Store(true)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = tr
	rp.FlushInterval = -1 // stream watches
	// A dropped watch is the point, not news.
	rp.ErrorLog = log.New(io.Discard, "", 0)
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query().Get("watch"); q == "true" || q == "1" {
			if cut := p.watchCut(); cut > 0 {
				ctx, cancel := context.WithTimeout(r.Context(), cut)
				defer cancel()
				r = r.WithContext(ctx)
			}
		} else if p.inject(w) {
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go p.srv.Serve(ln)
	return p, nil
}

// Config is a client config that goes through the proxy.
func (p *Proxy) Config() *rest.Config {
	// A timeout like the CLI's --request-timeout: a response lost on the
	// way must not hang the client for ever.
	return &rest.Config{Host: p.URL, QPS: 200, Burst: 400, Timeout: 30 * time.Second}
}

// Enable turns faults on or off.
func (p *Proxy) Enable(on bool) { p.enabled.Store(on) }

// Faults returns what was injected so far.
func (p *Proxy) Faults() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults
}

// Close stops the proxy.
func (p *Proxy) Close() { p.srv.Close() }

// watchCut counts a watch and, while faults are on, says after how long to
// drop its stream.
func (p *Proxy) watchCut() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults.Watches++
	if !p.enabled.Load() {
		return 0
	}
	p.faults.WatchDropped++
	return time.Duration(50+p.rnd.Intn(450)) * time.Millisecond
}

func (p *Proxy) inject(w http.ResponseWriter) bool {
	if !p.enabled.Load() {
		return false
	}
	p.mu.Lock()
	roll, kind := p.rnd.Float64(), p.rnd.Intn(5)
	if roll >= p.Rate {
		p.mu.Unlock()
		return false
	}
	switch kind {
	case 0:
		p.faults.TooMany++
	case 1:
		p.faults.Internal++
	case 2:
		p.faults.Unavailable++
	case 3:
		p.faults.Reset++
	case 4:
		p.faults.Slow++
	}
	p.mu.Unlock()
	switch kind {
	case 0:
		w.Header().Set("Retry-After", "1")
		status(w, http.StatusTooManyRequests, "TooManyRequests", "injected: too many requests")
	case 1:
		status(w, http.StatusInternalServerError, "InternalError", "injected: internal error")
	case 2:
		status(w, http.StatusServiceUnavailable, "ServiceUnavailable", "injected: unavailable")
	case 3:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					tc.SetLinger(0) // RST, not FIN
				}
				conn.Close()
				return true
			}
		}
		status(w, http.StatusBadGateway, "InternalError", "injected: reset")
	case 4:
		time.Sleep(150 * time.Millisecond)
		return false // slow, then served
	}
	return true
}

func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":%q,"reason":%q,"code":%d}`, msg, reason, code)
}
