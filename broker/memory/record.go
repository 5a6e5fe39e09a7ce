package memory

import "github.com/tracebus/tracebus/broker"

// Published returns copies of the messages published to the server, in the
// order the server accepted them, whatever their destination and whether
// or not a subscription matched them. Each copy carries the Sequence and
// Timestamp the server gave it. Only a server made WithRecording keeps
// messages; others return nil.
func (srv *Server) Published() []*broker.Message {
	return srv.publishedWhere(func(*broker.Message) bool { return true })
}

// PublishedTo returns copies of the messages published to exactly
// destination (not a pattern), in publish order; see Published.
func (srv *Server) PublishedTo(destination string) []*broker.Message {
	return srv.publishedWhere(func(m *broker.Message) bool { return m.Destination == destination })
}

func (srv *Server) publishedWhere(keep func(*broker.Message) bool) []*broker.Message {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var out []*broker.Message
	for _, m := range srv.published {
		if keep(m) {
			out = append(out, m.Clone())
		}
	}
	return out
}
