package kube

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Pace is the adaptive bound on a client's requests in flight (watches
// aside), enforced in its transport so that every caller (apply's steps,
// its backup reads, the rescans) is paced alike: additive
// increase, multiplicative decrease, as TCP paces a connection. The server
// says when it is too much (API Priority and Fairness answers 429 with
// Retry-After; an overloaded server 503); client-go already waits out each
// Retry-After and retries, and Pace also halves the requests in flight so
// the next ones are not throttled too. Each request that completes without
// a throttle grows the bound back by one per bound's worth of successes, up
// to its ceiling. There is no fixed client-side rate: the server's own pace is the
// limit.
type Pace struct {
	mu       sync.Mutex
	cond     *sync.Cond
	max      int
	limit    int
	inFlight int
	okRun    int
	cutAt    time.Time

	// throttles counts the 429/503 answers seen; lowest is the lowest bound
	// reached (Stats reads both).
	throttles int
	lowest    int
	fixed     bool
}

// Fix stops the adapting: the bound stays at its ceiling whatever the
// server says (the politeness test's negative control).
func (p *Pace) Fix() {
	p.mu.Lock()
	p.fixed = true
	p.mu.Unlock()
}

func (p *Pace) wrap(rt http.RoundTripper) http.RoundTripper {
	return wrapper{next: rt, fn: func(req *http.Request) (*http.Response, error) {
		if q := req.URL.Query().Get("watch"); q == "true" || q == "1" {
			return rt.RoundTrip(req) // long-lived: never holds a slot
		}
		if err := p.Acquire(req.Context()); err != nil {
			return nil, err
		}
		resp, err := rt.RoundTrip(req)
		p.Release()
		p.observe(resp)
		return resp, err
	}}
}

// NewPace bounds writes in flight to at most max, starting there.
func NewPace(max int) *Pace {
	if max < 1 {
		max = 1
	}
	p := &Pace{max: max, limit: max, lowest: max}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// SetMax sets the bound's ceiling (apply's --concurrency) and starts there.
func (p *Pace) SetMax(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.max, p.limit, p.lowest, p.okRun = max(1, n), max(1, n), max(1, n), 0
	p.cond.Broadcast()
}

// Acquire waits for a slot under the current bound.
func (p *Pace) Acquire(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.inFlight >= p.limit {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.cond.Wait()
	}
	p.inFlight++
	return nil
}

// Release frees a slot.
func (p *Pace) Release() {
	p.mu.Lock()
	p.inFlight--
	p.cond.Signal()
	p.mu.Unlock()
}

// throttled halves the bound, at most once per half second: the requests
// already in flight when the server started refusing all see it at once.
func (p *Pace) throttled() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.throttles++
	p.okRun = 0
	if p.fixed || time.Since(p.cutAt) < 500*time.Millisecond {
		return
	}
	p.cutAt = time.Now()
	p.limit = max(1, p.limit/2)
	p.lowest = min(p.lowest, p.limit)
}

func (p *Pace) succeeded() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.limit >= p.max {
		return
	}
	if p.okRun++; p.okRun >= p.limit {
		p.okRun = 0
		p.limit++
		p.cond.Broadcast()
	}
}

// Limit is the current bound.
func (p *Pace) Limit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit
}

// Stats returns the throttles seen and the lowest bound reached.
func (p *Pace) Stats() (throttles, minLimit int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.throttles, p.lowest
}

// observe feeds the pace from every response: 429 and 503 are the server
// asking for less.
func (p *Pace) observe(resp *http.Response) {
	if resp == nil {
		return
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		p.throttled()
	default:
		if resp.StatusCode < 500 {
			p.succeeded()
		}
	}
}
