package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/p2/buddy/lambda/auth"
	"github.com/p2/buddy/lambda/dev/fakeclock"
	"github.com/p2/buddy/lambda/dev/localissuer"
	"github.com/p2/buddy/lambda/dev/localissuer/localissuertest"
)

// newClock is a hand-driven clock at a whole second, so rate limits and
// key ages are tested by moving time, not by waiting.
func newClock() *fakeclock.Clock { return fakeclock.New(time.Now().Truncate(time.Second)) }

// jwksServer is an issuer's JWKS endpoint whose key set and health the
// test changes, counting the fetches it answers.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	status  int
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, issuers ...*localissuer.Issuer) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK}
	s.serve(t, issuers...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		status, body := s.status, s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// serve publishes the union of the issuers' key sets.
func (s *jwksServer) serve(t *testing.T, issuers ...*localissuer.Issuer) {
	t.Helper()
	var all struct {
		Keys []json.RawMessage `json:"keys"`
	}
	all.Keys = []json.RawMessage{}
	for _, li := range issuers {
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(li.JWKS(), &set); err != nil {
			t.Fatalf("issuer JWKS: %v", err)
		}
		all.Keys = append(all.Keys, set.Keys...)
	}
	b, err := json.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body, s.status = b, http.StatusOK
	s.mu.Unlock()
}

func (s *jwksServer) fail(status int, body string) {
	s.mu.Lock()
	s.body, s.status = []byte(body), status
	s.mu.Unlock()
}

// claims are a token's payload; the zero fields are left out.
type claims struct {
	jwt.RegisteredClaims
	TokenUse string `json:"token_use,omitempty"`
	ClientID string `json:"client_id,omitempty"`
}

// valid are the claims of a good token at now.
func valid(now time.Time) claims {
	return claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    localissuertest.Issuer,
		Subject:   "alice",
		Audience:  jwt.ClaimStrings{localissuertest.Audience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}}
}

func sign(t *testing.T, li *localissuer.Issuer, c claims) string {
	t.Helper()
	s, err := li.SignClaims(c)
	if err != nil {
		t.Fatalf("SignClaims: %v", err)
	}
	return s
}

// signRaw signs c with any method and key under the given kid, for the
// tokens a LocalIssuer would never make.
func signRaw(t *testing.T, method jwt.SigningMethod, key any, kid string, c claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

func TestVerify(t *testing.T) {
	es := localissuertest.New(t, nil)
	rs := localissuertest.New(t, localissuertest.RSAKey())
	srv := newJWKSServer(t, es, rs)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&localissuertest.RSAKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	type env struct{ now time.Time }
	tests := []struct {
		name    string
		token   func(e env) string
		wantSub string
		wantErr string // substring of the detail; empty means accepted
	}{
		{"ES256 token from the issuer is accepted", func(e env) string {
			return sign(t, es, valid(e.now))
		}, "alice", ""},
		{"RS256 token from the issuer is accepted", func(e env) string {
			return sign(t, rs, valid(e.now))
		}, "alice", ""},
		{"aud list containing the audience is accepted", func(e env) string {
			c := valid(e.now)
			c.Audience = jwt.ClaimStrings{"other", localissuertest.Audience}
			return sign(t, es, c)
		}, "alice", ""},
		{"Cognito access token with our client_id is accepted", func(e env) string {
			c := valid(e.now)
			c.Audience, c.TokenUse, c.ClientID = nil, "access", localissuertest.Audience
			return sign(t, es, c)
		}, "alice", ""},
		{"nbf within the leeway is accepted", func(e env) string {
			c := valid(e.now)
			c.NotBefore = jwt.NewNumericDate(e.now.Add(20 * time.Second))
			c.IssuedAt = jwt.NewNumericDate(e.now.Add(20 * time.Second))
			return sign(t, es, c)
		}, "alice", ""},
		{"expired a moment ago is rejected despite the leeway", func(e env) string {
			c := valid(e.now)
			c.ExpiresAt = jwt.NewNumericDate(e.now.Add(-5 * time.Second))
			return sign(t, es, c)
		}, "", "token is expired"},
		{"expired an hour ago is rejected", func(e env) string {
			c := valid(e.now.Add(-2 * time.Hour))
			return sign(t, es, c)
		}, "", "token is expired"},
		{"exp missing is rejected", func(e env) string {
			c := valid(e.now)
			c.ExpiresAt = nil
			return sign(t, es, c)
		}, "", "exp claim is required"},
		{"not yet valid is rejected", func(e env) string {
			c := valid(e.now)
			c.NotBefore = jwt.NewNumericDate(e.now.Add(5 * time.Minute))
			return sign(t, es, c)
		}, "", "token is not valid yet"},
		{"issued in the future is rejected", func(e env) string {
			c := valid(e.now)
			c.IssuedAt = jwt.NewNumericDate(e.now.Add(5 * time.Minute))
			return sign(t, es, c)
		}, "", "token used before issued"},
		{"wrong issuer is rejected", func(e env) string {
			c := valid(e.now)
			c.Issuer = "https://evil.test/pool"
			return sign(t, es, c)
		}, "", "token has invalid issuer"},
		{"wrong audience is rejected", func(e env) string {
			c := valid(e.now)
			c.Audience = jwt.ClaimStrings{"someone-else"}
			return sign(t, es, c)
		}, "", "token has invalid audience"},
		{"no audience at all is rejected", func(e env) string {
			c := valid(e.now)
			c.Audience = nil
			return sign(t, es, c)
		}, "", "token has invalid audience"},
		{"access token for another client is rejected", func(e env) string {
			c := valid(e.now)
			c.Audience, c.TokenUse, c.ClientID = nil, "access", "another-client"
			return sign(t, es, c)
		}, "", "token has invalid audience"},
		{"client_id without token_use access is rejected", func(e env) string {
			c := valid(e.now)
			c.Audience, c.TokenUse, c.ClientID = nil, "id", localissuertest.Audience
			return sign(t, es, c)
		}, "", "token has invalid audience"},
		{"missing sub is rejected", func(e env) string {
			c := valid(e.now)
			c.Subject = ""
			return sign(t, es, c)
		}, "", "sub"},
		{"another key under the issuer's kid is rejected", func(e env) string {
			return signRaw(t, jwt.SigningMethodES256, other, es.KeyID(), valid(e.now))
		}, "", "token signature is invalid"},
		{"alg differing from the key's alg is rejected", func(e env) string {
			return signRaw(t, jwt.SigningMethodRS256, localissuertest.RSAKey(), es.KeyID(), valid(e.now))
		}, "", "does not match token"},
		{"unknown kid is rejected", func(e env) string {
			return signRaw(t, jwt.SigningMethodES256, other, "no-such-kid", valid(e.now))
		}, "", "unknown kid"},
		{"token without kid is rejected", func(e env) string {
			return signRaw(t, jwt.SigningMethodES256, other, "", valid(e.now))
		}, "", "no kid"},
		{"alg none is rejected", func(e env) string {
			return signRaw(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, es.KeyID(), valid(e.now))
		}, "", "signing method none is invalid"},
		{"HS256 keyed with the public key is rejected", func(e env) string {
			return signRaw(t, jwt.SigningMethodHS256, pubPEM, rs.KeyID(), valid(e.now))
		}, "", "signing method HS256 is invalid"},
		{"malformed token is rejected", func(e env) string {
			return "not.a.jwt"
		}, "", "token is malformed"},
		{"two segments are rejected", func(e env) string {
			s := sign(t, es, valid(e.now))
			return s[:strings.LastIndex(s, ".")]
		}, "", "token is malformed"},
		{"empty string is rejected", func(e env) string { return "" }, "", "no token"},
		{"oversized token is rejected unread", func(e env) string {
			return strings.Repeat("a", auth.MaxTokenBytes+1)
		}, "", "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			v := auth.NewJWKSVerifier(auth.JWKSOptions{URL: srv.URL, Issuer: localissuertest.Issuer, Audience: localissuertest.Audience, Now: clk.Now})
			tok := tt.token(env{now: clk.Now()})
			got, err := v.Verify(context.Background(), tok)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got.Subject != tt.wantSub {
					t.Errorf("Subject = %q, want %q", got.Subject, tt.wantSub)
				}
				if got.ExpiresAt <= clk.Now().Unix() {
					t.Errorf("ExpiresAt = %d, not after now %d", got.ExpiresAt, clk.Now().Unix())
				}
				return
			}
			checkUnauthorized(t, err, tt.wantErr, tok)
		})
	}
}

// checkUnauthorized asserts err is ErrUnauthorized for the expected reason
// and does not leak the token into the logs.
func checkUnauthorized(t *testing.T, err error, want, token string) {
	t.Helper()
	if !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to mention %q", err, want)
	}
	if len(token) > 20 && strings.Contains(err.Error(), token) {
		t.Errorf("err contains the token: %q", err)
	}
	for _, part := range strings.Split(token, ".") {
		if len(part) > 20 && strings.Contains(err.Error(), part) {
			t.Errorf("err contains a token segment: %q", err)
		}
	}
}

func TestVerifyWhenJWKSUnavailable(t *testing.T) {
	li := localissuertest.New(t, nil)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tests := []struct {
		name    string
		url     func(*jwksServer) string
		prepare func(*jwksServer)
		wantErr string
	}{
		{"endpoint refusing connections", func(*jwksServer) string { return closed.URL }, func(*jwksServer) {}, "fetch JWKS"},
		{"endpoint answering 500", func(s *jwksServer) string { return s.URL }, func(s *jwksServer) { s.fail(500, "oops") }, "status 500"},
		{"endpoint answering HTML", func(s *jwksServer) string { return s.URL }, func(s *jwksServer) { s.fail(200, "<html>") }, "not a JWKS"},
		{"JWKS without our key", func(s *jwksServer) string { return s.URL }, func(s *jwksServer) { s.fail(200, `{"keys":[]}`) }, "not in the issuer's JWKS"},
		{"no URL configured", func(*jwksServer) string { return "" }, func(*jwksServer) {}, "misconfigured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newJWKSServer(t, li)
			tt.prepare(srv)
			v := auth.NewJWKSVerifier(auth.JWKSOptions{URL: tt.url(srv), Issuer: localissuertest.Issuer, Audience: localissuertest.Audience})
			tok, err := li.Sign("alice", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(context.Background(), tok)
			checkUnauthorized(t, err, tt.wantErr, tok)
		})
	}
}

func TestKeyRotationAndRefetchLimits(t *testing.T) {
	oldKey, newKey := localissuertest.New(t, nil), localissuertest.New(t, nil)
	srv := newJWKSServer(t, oldKey)
	clk := newClock()
	v := auth.NewJWKSVerifier(auth.JWKSOptions{URL: srv.URL, Issuer: localissuertest.Issuer, Audience: localissuertest.Audience, Now: clk.Now})
	ctx := context.Background()
	fetches := func(t *testing.T, want int64) {
		t.Helper()
		if got := srv.fetches.Load(); got != want {
			t.Fatalf("JWKS fetched %d times, want %d", got, want)
		}
	}
	accept := func(t *testing.T, li *localissuer.Issuer) {
		t.Helper()
		if _, err := v.Verify(ctx, sign(t, li, valid(clk.Now()))); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}

	fetches(t, 0) // construction does no I/O: Lambda init stays fast
	accept(t, oldKey)
	accept(t, oldKey)
	fetches(t, 1)

	// The issuer publishes a new key just after our fetch: the refetch it
	// needs waits for the rate limit, and a flood of made-up kids in the
	// meantime costs the issuer nothing.
	srv.serve(t, oldKey, newKey)
	_, err := v.Verify(ctx, sign(t, newKey, valid(clk.Now())))
	checkUnauthorized(t, err, "rate-limited", "")
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		_, err := v.Verify(ctx, signRaw(t, jwt.SigningMethodES256, stranger, fmt.Sprintf("made-up-%d", i), valid(clk.Now())))
		checkUnauthorized(t, err, "unknown kid", "")
	}
	fetches(t, 1)

	clk.Advance(auth.DefaultMinRefreshInterval)
	accept(t, newKey)
	fetches(t, 2)

	// The old key is withdrawn and the issuer then goes down: the cached
	// keys serve until they are too old to trust, then a fetch is due, and
	// while the issuer is unreachable they still serve (availability beats
	// freshness); once it answers, the withdrawn key stops verifying.
	srv.serve(t, newKey)
	clk.Advance(auth.DefaultMaxKeyAge / 2)
	accept(t, oldKey)
	fetches(t, 2)
	srv.fail(http.StatusServiceUnavailable, "down")
	clk.Advance(auth.DefaultMaxKeyAge / 2)
	accept(t, oldKey)
	fetches(t, 3)
	srv.serve(t, newKey)
	clk.Advance(auth.DefaultMinRefreshInterval)
	_, err = v.Verify(ctx, sign(t, oldKey, valid(clk.Now())))
	checkUnauthorized(t, err, "not in the issuer's JWKS", "")
	fetches(t, 4)
	accept(t, newKey)
	fetches(t, 4)
}

func TestConcurrentFirstUseFetchesOnce(t *testing.T) {
	li := localissuertest.New(t, nil)
	srv := newJWKSServer(t, li)
	v := auth.NewJWKSVerifier(auth.JWKSOptions{URL: srv.URL, Issuer: localissuertest.Issuer, Audience: localissuertest.Audience})
	tok, err := li.Sign("alice", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), tok); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Verify: %v", err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1", n)
	}
}
