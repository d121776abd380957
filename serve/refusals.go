package serve

import (
	"net"
	"net/http"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Refusal limits: every refused request is audited, but not at any rate a
// client cares to send. A client (by remote address) past the limit is
// answered 429 without an entry; its next audited refusal says how many
// went unrecorded one by one.
const (
	refusalRate    = rate.Limit(1) // audited refusals a second, per client
	refusalBurst   = 20
	refusalClients = 4096 // clients remembered; the least recent is forgotten
)

// refusals is the per-client limiter of audited refusals.
type refusals struct {
	mu      sync.Mutex
	clients *lru.Cache[string, *refusalClient]
}

type refusalClient struct {
	lim     *rate.Limiter
	dropped int // refusals not audited one by one since the last audited
}

func newRefusals() *refusals {
	c, err := lru.New[string, *refusalClient](refusalClients)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return &refusals{clients: c}
}

// allow reports whether a refusal of r's client is audited now, and how
// many of its refusals were not since the last one that was.
func (f *refusals) allow(r *http.Request, now time.Time) (ok bool, dropped int) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, found := f.clients.Get(host)
	if !found {
		c = &refusalClient{lim: rate.NewLimiter(refusalRate, refusalBurst)}
		f.clients.Add(host, c)
	}
	if !c.lim.AllowN(now, 1) {
		c.dropped++
		return false, 0
	}
	dropped, c.dropped = c.dropped, 0
	return true, dropped
}
