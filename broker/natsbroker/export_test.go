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

// EndWatchers ends the current watcher of every open watch subscription,
// as nats.go does when it gives up on re-creating a watcher's consumer,
// and returns how many it ended.
func EndWatchers(t *Transport) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for s := range t.subs {
		if w, ok := s.(*watchSub); ok {
			if c := w.watcherCancel.Load(); c != nil {
				(*c)()
				n++
			}
		}
	}
	return n
}
