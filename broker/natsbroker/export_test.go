package natsbroker

// CoreDropped returns what nats.go's Subscription.Dropped reports for the
// open core subscription to subject, or -1.
func CoreDropped(t *Transport, subject string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for sub, s := range t.coreSubs {
		if s.spec.Destination == subject {
			if n, err := sub.Dropped(); err == nil {
				return n
			}
		}
	}
	return -1
}
