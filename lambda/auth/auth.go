// Package auth verifies the JWTs that authenticate users: on the WebSocket
// $connect (token in the query string) and, in the local dev server, on the
// HTTP API (API Gateway's JWT authorizer does it in AWS).
package auth

import (
	"context"
	"errors"
)

// ErrUnauthorized wraps every verification failure; the detail is for logs
// only, never for the client.
var ErrUnauthorized = errors.New("auth: unauthorized")

// Claims are the verified facts a handler may use.
type Claims struct {
	Subject   string
	ExpiresAt int64 // epoch seconds
}

// Verifier checks a compact JWT.
type Verifier interface {
	Verify(ctx context.Context, token string) (Claims, error)
}
