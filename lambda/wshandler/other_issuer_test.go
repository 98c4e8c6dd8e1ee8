package wshandler_test

import "github.com/p2/buddy/lambda/dev/localissuer"

// newOtherIssuer signs with a different key under the same issuer name and
// key id scheme: its tokens must not verify.
func newOtherIssuer(issuer, audience string) (*localissuer.Issuer, error) {
	return localissuer.New(issuer, audience, nil)
}
