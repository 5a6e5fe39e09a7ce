package subject

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, subject string
		want             bool
	}{
		{"orders", "orders", true},
		{"orders", "orders.new", false},
		{"orders.*", "orders.new", true},
		{"orders.*", "orders.rejected", true},
		{"orders.*", "orders", false},
		{"orders.*", "orders.new.eu", false},
		{"orders.>", "orders.new.eu", true},
		{"orders.>", "orders", false},
		{">", "dlq", true},
		{"*", "dlq", true},
		{"*", "dlq.orders", false},
		{"*.new", "orders.new", true},
		{"*.new", "orders.old", false},
		{"orders-in", "orders-out", false}, // Kafka topics: equality
		{"", "", true},
		{"a", "", false},
	}
	for _, tc := range tests {
		if got := Match(tc.pattern, tc.subject); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.subject, got, tc.want)
		}
	}
}
