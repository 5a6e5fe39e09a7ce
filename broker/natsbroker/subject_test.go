package natsbroker

import "testing"

func TestSubjectCovers(t *testing.T) {
	tests := []struct {
		pattern, subject string
		want             bool
	}{
		{"orders", "orders", true},
		{"orders", "orders.new", false},
		{"orders.new", "orders", false},
		{"orders.*", "orders.new", true},
		{"orders.*", "orders.new.eu", false},
		{"orders.*", "orders.*", true},
		{"orders.*", "orders.>", false},
		{"orders.>", "orders.new", true},
		{"orders.>", "orders.new.eu", true},
		{"orders.>", "orders.*", true},
		{"orders.>", "orders.>", true},
		{"orders.>", "orders", false},
		{">", "anything.at.all", true},
		{">", ">", true},
		{"*", "orders", true},
		{"*", "orders.new", false},
		{"*.new", "orders.new", true},
		{"*.new", "orders.old", false},
		{"orders.new", "orders.*", false},
		{"orders", "", false},
		{"", "", false},
		{"a..b", "a..b", false},
	}
	for _, tc := range tests {
		if got := subjectCovers(tc.pattern, tc.subject); got != tc.want {
			t.Errorf("subjectCovers(%q, %q) = %v, want %v", tc.pattern, tc.subject, got, tc.want)
		}
	}
}

func TestGroupDurable(t *testing.T) {
	tests := []struct{ group, dest, want string }{
		{"billing", "orders", "billing_orders"},
		{"billing", "orders.*", "billing_orders_+"},
		{"billing", "orders.>", "billing_orders_#"},
		{"team.a", "x y/z\\w", "team_a_x_y_z_w"},
	}
	for _, tc := range tests {
		if got := groupDurable(tc.group, tc.dest); got != tc.want {
			t.Errorf("groupDurable(%q, %q) = %q, want %q", tc.group, tc.dest, got, tc.want)
		}
	}
}
