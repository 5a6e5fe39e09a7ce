package memory

import "github.com/tracebus/tracebus/broker"

// Published returns copies of the messages published to the server, in the
// order the server accepted them, whatever their destination and whether
// or not a subscription matched them. Each copy carries the Sequence and
// Timestamp the server gave it. Only a server made WithRecording keeps
// messages; others return nil. (testutil's Harness.Published gives the
// messages of one destination.)
func (srv *Server) Published() []*broker.Message {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var out []*broker.Message
	for _, m := range srv.published {
		out = append(out, m.Clone())
	}
	return out
}
