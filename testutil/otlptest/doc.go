// Package otlptest runs an OTLP receiver for tests: a collector reduced to
// what tests check. It keeps every span, metric name and log record it is
// sent, with the resource that came along, over OTLP/HTTP (binary protobuf)
// or OTLP/gRPC on a loopback port, and can refuse a signal the way a
// tracing-only backend such as Jaeger does (404 over HTTP, Unimplemented
// over gRPC).
//
//	rcv := otlptest.StartHTTP(t, otlptest.Refuse(otlptest.Metrics))
//	// export to rcv.URL ...
//	span, ok := rcv.Span("send orders")
package otlptest
