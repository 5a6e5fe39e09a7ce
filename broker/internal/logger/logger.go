// Package logger holds the one rule for a transport's logger: the one given
// to the transport (its WithLogger) wins; otherwise the broker's, handed
// over through driver.LoggerSetter; otherwise slog.Default().
package logger

import "log/slog"

// Choice is a transport's logger. Its zero value is not ready: start from
// Default.
type Choice struct {
	*slog.Logger
	own bool // given to the transport itself
}

// Default returns a Choice of slog.Default().
func Default() Choice { return Choice{Logger: slog.Default()} }

// Own sets the transport's own logger (its WithLogger). A nil l is ignored.
func (c *Choice) Own(l *slog.Logger) {
	if l != nil {
		c.Logger, c.own = l, true
	}
}

// Offer sets l (the broker's logger) unless the transport has its own. A
// nil l is ignored.
func (c *Choice) Offer(l *slog.Logger) {
	if l != nil && !c.own {
		c.Logger = l
	}
}
