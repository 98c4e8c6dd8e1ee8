// Package localissuertest gives tests issuers of tokens for one made-up
// issuer and audience, so that the verifier's tests (lambda/auth) and the
// issuer's own speak of the same one.
package localissuertest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"sync"
	"testing"

	"github.com/p2/buddy/lambda/dev/localissuer"
)

// The `iss` and `aud` of New's issuers, shaped like a Cognito user pool's.
const (
	Issuer   = "https://issuer.test/pool"
	Audience = "buddy-client"
)

// New is an issuer of Issuer's tokens for Audience signed with key (nil: a
// new P-256 key); it fails the test when key is unusable.
func New(t testing.TB, key crypto.Signer) *localissuer.Issuer {
	t.Helper()
	li, err := localissuer.New(Issuer, Audience, key)
	if err != nil {
		t.Fatalf("localissuer.New: %v", err)
	}
	return li
}

// RSAKey is an RS256 key, generated once for the test binary: a 2048-bit
// key takes a noticeable moment.
var RSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})
