package exporters_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tracebus/tracebus/baggage"
	"github.com/tracebus/tracebus/exporters"
)

// bigBaggage is a baggage header of n members k0=v0,k1=v1,...
func bigBaggage(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("k%d=v%d", i, i)
	}
	return strings.Join(parts, ",")
}

// TestSetupBaggageOverLimits checks that the propagator Setup builds, by
// default and for every OTEL_PROPAGATORS naming baggage, cuts baggage over
// the W3C limits to the leading members that fit instead of dropping it
// whole (otel-go's propagation.Baggage returns nothing for either header).
func TestSetupBaggageOverLimits(t *testing.T) {
	thousand := bigBaggage(1000)
	// 10 KB in 16 members of 640 bytes: over MaxBytes, under MaxMembers.
	var wide []string
	for i := range 16 {
		wide = append(wide, fmt.Sprintf("w%02d=%s", i, strings.Repeat("x", 636)))
	}
	tenKB := strings.Join(wide, ",")
	for _, env := range []string{"", "baggage", "tracecontext,baggage", "b3, baggage"} {
		t.Run("OTEL_PROPAGATORS="+env, func(t *testing.T) {
			t.Setenv("OTEL_PROPAGATORS", env)
			p, err := exporters.Setup(context.Background(), exporters.WithoutGlobal(), exporters.WithMemory(tracetest.NewSpanRecorder(), sdkmetric.NewManualReader()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Shutdown(context.Background()) })

			got := otelbaggage.FromContext(p.Propagator.Extract(context.Background(),
				propagation.MapCarrier{"baggage": thousand}))
			if got.Len() != baggage.MaxMembers {
				t.Fatalf("1,000 members arrived as %d, want %d", got.Len(), baggage.MaxMembers)
			}
			for i := range baggage.MaxMembers {
				if v := got.Member(fmt.Sprintf("k%d", i)).Value(); v != fmt.Sprintf("v%d", i) {
					t.Errorf("k%d = %q: not the first-seen members", i, v)
				}
			}
			got = otelbaggage.FromContext(p.Propagator.Extract(context.Background(),
				propagation.MapCarrier{"baggage": tenKB}))
			if got.Len() == 0 || got.Len() >= 16 {
				t.Fatalf("a 10 KB header arrived as %d members, want the leading ones within %d bytes", got.Len(), baggage.MaxBytes)
			}
			for i := range got.Len() {
				if got.Member(fmt.Sprintf("w%02d", i)).Key() == "" {
					t.Errorf("member w%02d missing: not the leading members", i)
				}
			}
		})
	}
}

// TestSetupPropagatorsFromEnv checks the header fields of the propagator
// built from OTEL_PROPAGATORS where tracebus replaces the baggage one.
func TestSetupPropagatorsFromEnv(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"", "[baggage traceparent tracestate]"},
		{"baggage", "[baggage]"},
		{"none", "[]"},
		{"baggage,none", "[]"},
		{"bogus", "[baggage traceparent tracestate]"},
		{"bogus,tracecontext", "[traceparent tracestate]"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv("OTEL_PROPAGATORS", tc.env)
			p, err := exporters.Setup(context.Background(), exporters.WithoutGlobal(), exporters.WithMemory(tracetest.NewSpanRecorder(), sdkmetric.NewManualReader()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
			if got := fmt.Sprint(slices.Sorted(slices.Values(p.Propagator.Fields()))); got != tc.want {
				t.Errorf("fields %s, want %s", got, tc.want)
			}
		})
	}
}
