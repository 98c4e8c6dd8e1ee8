package localissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Issuer signs tokens for the local dev server and the tests, and
// publishes its public key as a JWKS, so that its tokens go through the same
// JWKSVerifier as Cognito's do in AWS.
type Issuer struct {
	issuer, audience string
	key              crypto.Signer
	method           jwt.SigningMethod
	kid              string
	jwks             []byte
}

// New makes an issuer with the given `iss` and `aud`. key must be
// an *ecdsa.PrivateKey on P-256 (signs ES256) or an *rsa.PrivateKey of at
// least 2048 bits (RS256); nil generates a P-256 key, which is fast to make
// and keeps tokens short enough for a query string.
func New(issuer, audience string, key crypto.Signer) (*Issuer, error) {
	if issuer == "" || audience == "" {
		return nil, errors.New("auth: local issuer needs an issuer and an audience")
	}
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("auth: generate key: %w", err)
		}
		key = k
	}
	li := &Issuer{issuer: issuer, audience: audience, key: key}
	var alg jwkset.ALG
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("auth: ECDSA key on %s; ES256 needs P-256", k.Curve.Params().Name)
		}
		li.method, alg = jwt.SigningMethodES256, jwkset.AlgES256
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("auth: RSA key of %d bits; use at least 2048", k.N.BitLen())
		}
		li.method, alg = jwt.SigningMethodRS256, jwkset.AlgRS256
	default:
		return nil, fmt.Errorf("auth: unsupported key type %T; use an ECDSA P-256 or RSA key", key)
	}
	jwk, err := jwkset.NewJWKFromKey(key.Public(), jwkset.JWKOptions{})
	if err != nil {
		return nil, fmt.Errorf("auth: describe key: %w", err)
	}
	li.kid = thumbprint(jwk.Marshal())
	jwk, err = jwkset.NewJWKFromKey(key.Public(), jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{ALG: alg, KID: li.kid, USE: jwkset.UseSig},
	})
	if err != nil {
		return nil, fmt.Errorf("auth: describe key: %w", err)
	}
	li.jwks, err = json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	if err != nil {
		return nil, fmt.Errorf("auth: encode JWKS: %w", err)
	}
	return li, nil
}

// thumbprint is the RFC 7638 JWK thumbprint, used as the key id: derived
// from the key, it stays the same across restarts that reuse the key file.
func thumbprint(m jwkset.JWKMarshal) string {
	// RFC 7638 §3.2: the required members only, in lexicographic order,
	// without whitespace; a struct with ordered fields produces exactly that.
	var canon any
	switch m.KTY {
	case jwkset.KtyEC:
		canon = struct {
			CRV jwkset.CRV `json:"crv"`
			KTY jwkset.KTY `json:"kty"`
			X   string     `json:"x"`
			Y   string     `json:"y"`
		}{m.CRV, m.KTY, m.X, m.Y}
	default: // RSA, the only other type New accepts
		canon = struct {
			E   string     `json:"e"`
			KTY jwkset.KTY `json:"kty"`
			N   string     `json:"n"`
		}{m.E, m.KTY, m.N}
	}
	b, _ := json.Marshal(canon) // plain strings cannot fail to encode
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// KeyID is the `kid` of every token the issuer signs.
func (li *Issuer) KeyID() string { return li.kid }

// Issuer is the `iss` of every token the issuer signs.
func (li *Issuer) Issuer() string { return li.issuer }

// Audience is the `aud` of every token the issuer signs.
func (li *Issuer) Audience() string { return li.audience }

// Sign returns a token for sub valid for ttl from now.
func (li *Issuer) Sign(sub string, ttl time.Duration) (string, error) {
	if sub == "" {
		return "", errors.New("auth: a token needs a subject")
	}
	if ttl <= 0 {
		return "", errors.New("auth: a token needs a positive lifetime")
	}
	now := time.Now().Truncate(time.Second)
	return li.SignClaims(jwt.RegisteredClaims{
		Issuer:    li.issuer,
		Subject:   sub,
		Audience:  jwt.ClaimStrings{li.audience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	})
}

// SignClaims signs arbitrary claims with the issuer's key and `kid`, as
// they are: tests use it to make tokens that must fail verification.
func (li *Issuer) SignClaims(claims jwt.Claims) (string, error) {
	t := jwt.NewWithClaims(li.method, claims)
	t.Header[jwkset.HeaderKID] = li.kid
	s, err := t.SignedString(li.key)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return s, nil
}

// JWKS is the issuer's public key set, as served at its JWKS URL.
func (li *Issuer) JWKS() []byte { return append([]byte(nil), li.jwks...) }

// JWKSHandler serves JWKS; mount it where the verifier's URL points
// (config derives `<issuer>/.well-known/jwks.json` when JWKS_URL is unset).
func (li *Issuer) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(li.jwks)
	})
}

// pemType is the PEM block of a PKCS #8 private key, which holds either
// key type.
const pemType = "PRIVATE KEY"

// LoadOrCreateKey returns the private key stored as PEM at path, creating a
// P-256 key there (mode 0600, directories 0700) when the file does not
// exist, so a dev server's tokens stay valid across restarts.
func LoadOrCreateKey(path string) (crypto.Signer, error) {
	key, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("auth: encode key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth: key directory: %w", err)
	}
	// Write a temporary file and link it into place: the link fails rather
	// than overwrites if another process created the key meanwhile, and
	// nobody ever reads a half-written file.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return nil, fmt.Errorf("auth: write key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := errors.Join(
		pem.Encode(tmp, &pem.Block{Type: pemType, Bytes: der}),
		tmp.Sync(),
		tmp.Close(),
	); err != nil {
		return nil, fmt.Errorf("auth: write key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadKey(path)
		}
		return nil, fmt.Errorf("auth: write key: %w", err)
	}
	return k, nil
}

// loadKey reads a PKCS #8 PEM private key; the error wraps fs.ErrNotExist
// when there is no file.
func loadKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != pemType {
		return nil, fmt.Errorf("auth: %s holds no %q PEM block", path, pemType)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: parse key %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("auth: key in %s is a %T, not a signing key", path, k)
	}
	return s, nil
}
