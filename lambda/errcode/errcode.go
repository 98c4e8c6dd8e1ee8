// Package errcode lists the error codes clients see: in the WebSocket
// protocol's error frames and in the HTTP API's error bodies. One list, so
// the two APIs cannot name the same failure two ways.
package errcode

const (
	BadRequest    = "bad_request"
	Unauthorized  = "unauthorized"
	Forbidden     = "forbidden"
	NotFound      = "not_found"
	TooLarge      = "too_large"
	QuotaExceeded = "quota_exceeded"
	RateLimited   = "rate_limited"
	UpstreamError = "upstream_error"
	Internal      = "internal"
	// MethodNotAllowed is the HTTP API's only code of its own: a route
	// called with a method it does not serve.
	MethodNotAllowed = "method_not_allowed"
)
