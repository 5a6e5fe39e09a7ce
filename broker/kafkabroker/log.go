package kafkabroker

import (
	"context"
	"fmt"
	"log/slog"
)

// kafkaLogger forwards kafka-go's error log to slog at debug level.
// kafka-go logs every failed fetch, join and heartbeat, most of which it
// retries and recovers from (a rebalance alone produces several), so they
// are diagnostics, not errors; what the transport cannot recover from it
// logs itself at warn or error level.
type kafkaLogger struct{ c *config }

// Printf implements kafka.Logger.
func (k kafkaLogger) Printf(format string, args ...any) {
	l := k.c.logger.Logger
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.LogAttrs(context.Background(), slog.LevelDebug, "kafka-go: "+fmt.Sprintf(format, args...))
}
