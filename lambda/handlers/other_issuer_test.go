package handlers_test

import "github.com/p2/buddy/lambda/auth"

// newOtherIssuer signs with a different key under the same issuer name and
// key id scheme: its tokens must not verify.
func newOtherIssuer(issuer, audience string) (*auth.LocalIssuer, error) {
	return auth.NewLocalIssuer(issuer, audience, nil)
}
