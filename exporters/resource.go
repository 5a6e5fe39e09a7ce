package exporters

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// newResource describes the service. Later sources win: the SDK defaults
// (unknown_service:<executable>, a random service.instance.id), then the
// detected host, OS, container and process, then OTEL_RESOURCE_ATTRIBUTES and
// OTEL_SERVICE_NAME, then the options.
//
// process.command_args is left out on purpose: command lines carry
// passwords and tokens often enough that shipping them to a collector by
// default is a leak waiting to happen.
func newResource(ctx context.Context, c *config) (*resource.Resource, error) {
	explicit := append([]attribute.KeyValue(nil), c.attrs...)
	if c.serviceName != "" {
		explicit = append(explicit, semconv.ServiceName(c.serviceName))
	}
	if c.serviceVersion != "" {
		explicit = append(explicit, semconv.ServiceVersion(c.serviceVersion))
	}
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithService(),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithOSType(),
		resource.WithContainer(),
		resource.WithProcessPID(),
		resource.WithProcessExecutableName(),
		resource.WithProcessExecutablePath(),
		resource.WithProcessOwner(),
		resource.WithProcessRuntimeName(),
		resource.WithProcessRuntimeVersion(),
		resource.WithProcessRuntimeDescription(),
		resource.WithFromEnv(),
		resource.WithAttributes(explicit...),
	)
	if err != nil {
		if res == nil {
			return nil, fmt.Errorf("exporters: build resource: %w", err)
		}
		// resource.New keeps what every other detector found when one
		// fails (no user name in a scratch container, no machine id, a
		// malformed pair in OTEL_RESOURCE_ATTRIBUTES). Running without
		// telemetry would be worse than running without process.owner.
		otel.Handle(fmt.Errorf("exporters: resource partly detected: %w", err))
	}
	return res, nil
}
