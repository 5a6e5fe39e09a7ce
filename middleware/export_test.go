package middleware

// WithBatchLinkLimit is withBatchLinkLimit, for the tests.
var WithBatchLinkLimit = withBatchLinkLimit
