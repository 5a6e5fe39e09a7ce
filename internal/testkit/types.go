package testkit

import "errors"

// Order is the payload of the typed suites: a value that validates itself.
type Order struct {
	ID       string `json:"id"`
	Quantity int    `json:"quantity"`
}

// Validate rejects orders without an id or with a quantity below 1.
func (o Order) Validate() error {
	if o.ID == "" {
		return errors.New("order without id")
	}
	if o.Quantity < 1 {
		return errors.New("quantity must be at least 1")
	}
	return nil
}

// Invoice is what the typed suites' handlers return for an Order.
type Invoice struct {
	OrderID string `json:"order_id"`
	Amount  int    `json:"amount"`
}
