package baggage

import (
	"context"
	"testing"

	otelbaggage "go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tracebus/tracebus/broker"
)

// The publish path runs ContextForPublish for every message. Baselines in
// the same run: otel-go alone reading the baggage of a ctx (what a publish
// without this package costs at least) and rebuilding it.

func BenchmarkContextForPublish(b *testing.B) {
	delivered := func(b *testing.B) context.Context {
		return contextWithDelivery(context.Background(),
			[]otelbaggage.Baggage{bag(b, "tenant", "acme", "user-id", "42", "region", "eu")}, false)
	}
	b.Run("NoView", func(b *testing.B) {
		ctx := otelbaggage.ContextWithBaggage(context.Background(), bag(b, "tenant", "acme"))
		b.ReportAllocs()
		for b.Loop() {
			_ = ContextForPublish(ctx)
		}
	})
	b.Run("Unedited", func(b *testing.B) {
		ctx := delivered(b)
		b.ReportAllocs()
		for b.Loop() {
			_ = ContextForPublish(ctx)
		}
	})
	b.Run("Edited", func(b *testing.B) {
		ctx := delivered(b)
		_ = FromContext(ctx).Set("step", "billed")
		b.ReportAllocs()
		for b.Loop() {
			_ = ContextForPublish(ctx)
		}
	})
	b.Run("EditedWithUserOTelBaggage", func(b *testing.B) {
		ctx := delivered(b)
		_ = FromContext(ctx).Set("step", "billed")
		m, _ := otelbaggage.NewMemberRaw("user", "added")
		ob, _ := otelbaggage.FromContext(ctx).SetMember(m)
		ctx = otelbaggage.ContextWithBaggage(ctx, ob)
		b.ReportAllocs()
		for b.Loop() {
			_ = ContextForPublish(ctx)
		}
	})
	b.Run("BaselineOTelRead", func(b *testing.B) {
		ctx := delivered(b)
		b.ReportAllocs()
		for b.Loop() {
			_ = otelbaggage.FromContext(ctx).Len()
		}
	})
	b.Run("BaselineOTelRebuild", func(b *testing.B) {
		ctx := delivered(b)
		m, _ := otelbaggage.NewMemberRaw("step", "billed")
		b.ReportAllocs()
		for b.Loop() {
			ob, _ := otelbaggage.FromContext(ctx).SetMember(m)
			_ = otelbaggage.ContextWithBaggage(ctx, ob)
		}
	})
}

// The consume path runs contextWithDelivery for every delivery, after the
// propagator extracted the baggage. Baseline: putting the extracted baggage
// into the ctx with otel-go alone.
func BenchmarkContextWithDelivery(b *testing.B) {
	three := bag(b, "tenant", "acme", "user-id", "42", "region", "eu")
	b.Run("Empty", func(b *testing.B) {
		per := []otelbaggage.Baggage{{}}
		b.ReportAllocs()
		for b.Loop() {
			_ = contextWithDelivery(context.Background(), per, false)
		}
	})
	b.Run("Single3Members", func(b *testing.B) {
		per := []otelbaggage.Baggage{three}
		b.ReportAllocs()
		for b.Loop() {
			_ = contextWithDelivery(context.Background(), per, false)
		}
	})
	b.Run("Batch10x3Members", func(b *testing.B) {
		per := make([]otelbaggage.Baggage, 10)
		for i := range per {
			per[i] = three
		}
		b.ReportAllocs()
		for b.Loop() {
			_ = contextWithDelivery(context.Background(), per, true)
		}
	})
	b.Run("BaselineOTel", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = otelbaggage.ContextWithBaggage(context.Background(), three)
		}
	})
}

// Propagator against otel-go's propagation.Baggage on the same headers.
func BenchmarkPropagator(b *testing.B) {
	ctx := otelbaggage.ContextWithBaggage(context.Background(), bag(b, "tenant", "acme", "user-id", "42", "region", "eu"))
	var h broker.Headers
	propagation.Baggage{}.Inject(ctx, &h)
	for _, p := range []struct {
		name string
		prop propagation.TextMapPropagator
	}{{"Ours", Propagator{}}, {"OTel", propagation.Baggage{}}} {
		b.Run("Extract"+p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = p.prop.Extract(context.Background(), &h)
			}
		})
		b.Run("Inject"+p.name, func(b *testing.B) {
			b.ReportAllocs()
			var out broker.Headers
			for b.Loop() {
				out = out[:0]
				p.prop.Inject(ctx, &out)
			}
		})
	}
}
