// Package exporters sets up OpenTelemetry for a tracebus service in one call:
// a tracer provider, a meter provider, a logger provider and a propagator, with the service's
// resource (service.name, service.version, host, OS, container and process)
// and the exporters you choose or the OTEL_* environment chooses.
//
//	p, err := exporters.Setup(ctx, exporters.WithService("billing", "1.4.0"))
//	if err != nil {
//		return err
//	}
//	defer func() {
//		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
//		defer cancel()
//		err = errors.Join(err, p.Shutdown(ctx)) // flushes; reports what it could not
//	}()
//
// Setup installs the providers and the propagator as the OpenTelemetry
// globals, which the telemetry middleware uses by default; WithoutGlobal
// keeps them to the returned Providers.
//
// # Exporters
//
//   - OTLP over gRPC or HTTP (WithOTLP): traces, metrics and logs to a
//     collector, Jaeger, Tempo or any OTLP backend. Zipkin is not offered:
//     otel-go deprecated its exporter, and Zipkin-era backends take OTLP.
//   - Prometheus (WithPrometheus): an http.Handler for /metrics on a
//     registry of its own, served on an address of its own if asked, with
//     Prometheus names (messaging_client_operation_duration_seconds).
//   - A terminal waterfall (NewWaterfall, given to WithSpanExporter): each
//     finished trace as a tree with timing bars, services, span kinds and
//     errors.
//   - JSON lines: the OpenTelemetry stdout exporter (stdouttrace) given to
//     WithSpanExporter, one span per line, to pipe into a store of your own.
//   - Memory (WithMemory): spans and metrics kept for tests, in the SDK's
//     own span recorder and manual reader.
//   - Logs over OTLP (WithOTLP, OTEL_LOGS_EXPORTER), written with
//     log/slog through Providers.LogHandler.
//   - Anything else (WithSpanExporter, WithMetricReader).
//
// # Environment
//
// autoexport and autoprop read the standard variables: OTEL_TRACES_EXPORTER
// (otlp, console, none, and waterfall, which Setup handles itself:
// importing this package registers nothing with autoexport, autoprop or any
// other global), OTEL_METRICS_EXPORTER (otlp, prometheus, console, none),
// OTEL_LOGS_EXPORTER (otlp, console, none),
// OTEL_EXPORTER_OTLP_[TRACES_|METRICS_|LOGS_]PROTOCOL and _ENDPOINT,
// _HEADERS, _TIMEOUT, OTEL_PROPAGATORS (tracecontext, baggage, b3, b3multi,
// jaeger, xray, ottrace, none, and jaegerbaggage: Jaeger's uberctx-{key}
// baggage headers, see baggage.JaegerPropagator, which Setup handles
// itself), OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER,
// OTEL_BSP_*, OTEL_BLRP_* and OTEL_METRIC_EXPORT_INTERVAL. Local views (waterfall, JSON lines, memory)
// add to what the environment configures; explicit remote exporters
// replace it (see Option for the exact rule).
//
// # Back pressure
//
// Every span exporter sits behind a batch processor with a bounded queue
// (OTEL_BSP_MAX_QUEUE_SIZE, 2048 spans): when the collector is slow or down
// the queue fills and further spans are dropped, so publish and consume never
// wait for telemetry and memory stays bounded. Shutdown reports the loss as a
// *NotExportedError per exporter. The queue is bounded in bytes
// too: attribute values are cut at 4096 bytes unless
// OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT or OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT
// set a limit (-1 for none); the SDK has none by default.
package exporters
