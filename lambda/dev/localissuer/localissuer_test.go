package localissuer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/p2/buddy/lambda/auth"
	"github.com/p2/buddy/lambda/dev/localissuer"
	"github.com/p2/buddy/lambda/dev/localissuer/localissuertest"
)

// TestLocalIssuerTokensPassTheRealVerifier is the reason the local issuer
// exists: the dev server verifies its tokens on the normal path.
func TestLocalIssuerTokensPassTheRealVerifier(t *testing.T) {
	for _, tt := range []struct {
		name string
		key  crypto.Signer
	}{
		{"generated P-256 key signs ES256", nil},
		{"RSA key signs RS256", localissuertest.RSAKey()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			li := localissuertest.New(t, tt.key)
			mux := http.NewServeMux()
			mux.Handle("GET /pool/.well-known/jwks.json", li.JWKSHandler())
			srv := httptest.NewServer(mux)
			defer srv.Close()
			v := auth.NewJWKSVerifier(auth.JWKSOptions{
				URL: srv.URL + "/pool/.well-known/jwks.json", Issuer: li.Issuer(), Audience: li.Audience(),
			})
			tok, err := li.Sign("bob", 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Subject != "bob" {
				t.Errorf("Subject = %q, want bob", c.Subject)
			}
			if d := time.Until(time.Unix(c.ExpiresAt, 0)); d < 9*time.Minute || d > 10*time.Minute {
				t.Errorf("token expires in %s, want about 10m", d)
			}
		})
	}
}

func TestLocalIssuerSignRejectsBadInput(t *testing.T) {
	li := localissuertest.New(t, nil)
	for _, tt := range []struct {
		name string
		sub  string
		ttl  time.Duration
	}{
		{"empty subject", "", time.Minute},
		{"zero lifetime", "alice", 0},
		{"negative lifetime", "alice", -time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tok, err := li.Sign(tt.sub, tt.ttl); err == nil {
				t.Errorf("Sign(%q, %s) = %q, want an error", tt.sub, tt.ttl, tok)
			}
		})
	}
}

func TestNewLocalIssuerRejectsUnusableKeys(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name             string
		issuer, audience string
		key              crypto.Signer
		want             string
	}{
		{"ECDSA key off P-256", localissuertest.Issuer, localissuertest.Audience, p384, "P-256"},
		{"Ed25519 key", localissuertest.Issuer, localissuertest.Audience, ed, "unsupported key type"},
		{"no issuer", "", localissuertest.Audience, nil, "issuer"},
		{"no audience", localissuertest.Issuer, "", nil, "audience"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := localissuer.New(tt.issuer, tt.audience, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestJWKSHandler(t *testing.T) {
	li := localissuertest.New(t, nil)
	srv := httptest.NewServer(li.JWKSHandler())
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET = %d %q, want 200 application/json", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if string(body) != string(li.JWKS()) {
		t.Errorf("served %s, JWKS() is %s", body, li.JWKS())
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS = %s (%v), want one key", body, err)
	}
	k := set.Keys[0]
	if k["kid"] != li.KeyID() || k["alg"] != "ES256" || k["use"] != "sig" || k["kty"] != "EC" {
		t.Errorf("key = %v, want kid %s, ES256, sig, EC", k, li.KeyID())
	}
	if _, ok := k["d"]; ok {
		t.Error("JWKS publishes the private key")
	}

	resp, err = http.Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", resp.StatusCode)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nested", "dev-key.pem")

	first, err := localissuer.LoadOrCreateKey(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %o, want 600", perm)
	}
	again, err := localissuer.LoadOrCreateKey(path)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !again.(interface{ Equal(crypto.PrivateKey) bool }).Equal(first) {
		t.Fatal("reloaded key differs from the created one")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "nested", ".key-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}

	// A restarted dev server keeps its kid, so tokens it issued before the
	// restart still verify after it.
	before := localissuertest.New(t, first)
	tok, err := before.Sign("alice", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	after := localissuertest.New(t, again)
	if before.KeyID() != after.KeyID() {
		t.Errorf("kid changed across restart: %s → %s", before.KeyID(), after.KeyID())
	}
	srv := httptest.NewServer(after.JWKSHandler())
	defer srv.Close()
	v := auth.NewJWKSVerifier(auth.JWKSOptions{URL: srv.URL, Issuer: localissuertest.Issuer, Audience: localissuertest.Audience})
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Errorf("token from before the restart: %v", err)
	}
}

func TestLoadOrCreateKeyRefusesUnreadableFiles(t *testing.T) {
	ecDER, err := x509.MarshalECPrivateKey(mustP256(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, content, want string
	}{
		{"not PEM", "hello", "no \"PRIVATE KEY\" PEM block"},
		{"SEC 1 EC key instead of PKCS #8", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})), "no \"PRIVATE KEY\" PEM block"},
		{"PKCS #8 block with junk inside", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")})), "parse key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := localissuer.LoadOrCreateKey(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
			// A bad key file is reported, never silently replaced.
			if b, _ := os.ReadFile(path); string(b) != tt.content {
				t.Error("the key file was overwritten")
			}
		})
	}
}

func mustP256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The header of a signed token names the issuer's key and algorithm, which
// is what lets the verifier find the key in the JWKS.
func TestSignedTokenHeader(t *testing.T) {
	li := localissuertest.New(t, nil)
	tok, err := li.Sign("alice", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Header["kid"] != li.KeyID() || parsed.Header["alg"] != "ES256" {
		t.Errorf("header = %v, want kid %s and alg ES256", parsed.Header, li.KeyID())
	}
}
