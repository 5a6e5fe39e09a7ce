package baggage

import (
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
)

// reportInterval is how often one kind of baggage problem reaches
// otel.Handle at most.
const reportInterval = time.Minute

// A reporter rate-limits one kind of problem. Baggage comes from the
// network: a producer that sends the same oversized or malformed baggage
// with every message would otherwise put one log line per message into
// the default OpenTelemetry error handler. The first problem is reported at
// once; the ones that follow within reportInterval are counted and the
// count rides on the next report.
type reporter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// The kinds of problem, each limited on its own.
var (
	limitReports     reporter
	invalidReports   reporter
	malformedReports reporter
)

// report hands the error build makes to otel.Handle unless a report of the
// same kind went out less than reportInterval ago. build runs only when the
// report goes out.
func (r *reporter) report(build func() error) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < reportInterval {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	err := build()
	if n > 0 {
		err = fmt.Errorf("%w (and %d similar problem(s) since the last report)", err, n)
	}
	otel.Handle(err)
}

// resetReports forgets the rate limits, for tests that count reports.
func resetReports() {
	for _, r := range []*reporter{&limitReports, &invalidReports, &malformedReports} {
		r.mu.Lock()
		r.last, r.suppressed = time.Time{}, 0
		r.mu.Unlock()
	}
}
