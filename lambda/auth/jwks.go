package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Defaults of JWKSOptions.
const (
	DefaultLeeway             = 30 * time.Second
	DefaultMinRefreshInterval = 30 * time.Second
	DefaultMaxKeyAge          = time.Hour
	DefaultFetchTimeout       = 5 * time.Second
)

// MaxTokenBytes bounds the token a verifier will look at. Real ID and access
// tokens are a few KB; anything far larger is junk and is refused before
// any decoding work.
const MaxTokenBytes = 16 * 1024

// maxJWKSBytes bounds the issuer's answer; a JWKS holds a handful of keys.
const maxJWKSBytes = 1 << 20

// allowedAlgs are the only signature algorithms accepted: the asymmetric
// ones Cognito and the local issuer use. Listing them closes "none" and the
// HS256-signed-with-the-public-key confusion.
var allowedAlgs = []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg()}

// JWKSOptions configure NewJWKSVerifier. URL, Issuer and Audience are
// required; the rest have defaults.
type JWKSOptions struct {
	// URL serves the issuer's JSON Web Key Set.
	URL string
	// Issuer must equal the token's `iss`.
	Issuer string
	// Audience must be in the token's `aud`, or, for a Cognito access token
	// (which has no `aud`), equal its `client_id`.
	Audience string
	// HTTPClient fetches the JWKS; http.DefaultClient when nil.
	HTTPClient *http.Client

	// Leeway tolerates clock skew on `nbf` and `iat` (not on `exp`).
	Leeway time.Duration
	// MinRefreshInterval is the least time between two fetches of the JWKS,
	// whatever triggers them, so a flood of tokens with made-up key ids
	// cannot turn into a flood of requests to the issuer.
	MinRefreshInterval time.Duration
	// MaxKeyAge is how long fetched keys are trusted before the next use
	// refetches them, so a key the issuer withdrew stops verifying even in a
	// long-lived execution environment. Stale keys keep working while the
	// issuer cannot be reached.
	MaxKeyAge time.Duration
	// FetchTimeout bounds one JWKS request.
	FetchTimeout time.Duration
	// Now is the clock, for tests; time.Now when nil.
	Now func() time.Time
}

// JWKSVerifier verifies JWTs against an issuer's JWKS. It fetches the set
// lazily, on the first token, because it runs in a Lambda whose init time
// matters and whose $connect route may never be called; it needs no
// background goroutine.
//
// It does not use jwkset's HTTP storage because that storage fetches when
// it is built (not lazily, and not with the request's context), makes a
// rate-limited refetch wait instead of failing fast, refreshes old keys only
// from a goroutine, and reports fetch failures to a callback rather than to
// the caller, who needs them in its log line. jwkset still parses and holds
// the keys, and keyfunc still maps a token's `kid` and `alg` to a key.
type JWKSVerifier struct {
	opts   JWKSOptions
	cfgErr error
	client *http.Client
	keys   *jwkset.MemoryJWKSet
	kf     keyfunc.Keyfunc
	parser *jwt.Parser

	// mu serializes fetches: concurrent first uses share one request.
	mu        sync.Mutex
	fetchedAt time.Time // last successful fetch; zero before
	triedAt   time.Time // last attempt, successful or not
}

var _ Verifier = (*JWKSVerifier)(nil)

// NewJWKSVerifier returns a verifier for opts. It does no I/O; a missing
// option makes every Verify fail with a detail naming it, so a Lambda with a
// bad configuration still starts and says why in its logs.
func NewJWKSVerifier(opts JWKSOptions) *JWKSVerifier {
	if opts.Leeway <= 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.MinRefreshInterval <= 0 {
		opts.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if opts.MaxKeyAge <= 0 {
		opts.MaxKeyAge = DefaultMaxKeyAge
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v := &JWKSVerifier{opts: opts, client: opts.HTTPClient, keys: jwkset.NewMemoryStorage()}
	if v.client == nil {
		v.client = http.DefaultClient
	}
	var missing []string
	for _, o := range []struct{ name, val string }{{"URL", opts.URL}, {"Issuer", opts.Issuer}, {"Audience", opts.Audience}} {
		if o.val == "" {
			missing = append(missing, o.name)
		}
	}
	if len(missing) > 0 {
		v.cfgErr = fmt.Errorf("verifier misconfigured: %v not set", missing)
	}
	// keyfunc.New only fails without a storage. The use whitelist admits
	// signing keys and keys that do not say (most issuers omit `use`), and
	// refuses encryption keys.
	v.kf, _ = keyfunc.New(keyfunc.Options{Storage: v.keys, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(allowedAlgs),
		jwt.WithIssuer(opts.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(opts.Leeway),
		jwt.WithTimeFunc(opts.Now),
		jwt.WithStrictDecoding(),
	)
	return v
}

// tokenClaims are the claims Verify reads: the registered ones plus
// Cognito's access-token markers.
type tokenClaims struct {
	jwt.RegisteredClaims
	TokenUse string `json:"token_use,omitempty"`
	ClientID string `json:"client_id,omitempty"`
}

// Verify checks token and returns its claims. Every failure wraps
// ErrUnauthorized; its detail never contains the token.
func (v *JWKSVerifier) Verify(ctx context.Context, token string) (Claims, error) {
	if v.cfgErr != nil {
		return Claims{}, unauthorized(v.cfgErr)
	}
	switch {
	case token == "":
		return Claims{}, unauthorized(errors.New("no token"))
	case len(token) > MaxTokenBytes:
		return Claims{}, unauthorized(fmt.Errorf("token longer than %d bytes", MaxTokenBytes))
	}
	var c tokenClaims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keyFor(ctx)); err != nil {
		return Claims{}, unauthorized(err)
	}
	// The parser allows the leeway on `exp` too; an expired token is
	// refused outright.
	if !v.opts.Now().Before(c.ExpiresAt.Time) {
		return Claims{}, unauthorized(jwt.ErrTokenExpired)
	}
	if !slices.Contains(c.Audience, v.opts.Audience) &&
		!(c.TokenUse == "access" && c.ClientID == v.opts.Audience) {
		return Claims{}, unauthorized(fmt.Errorf("%w: neither aud nor an access token's client_id is the expected audience", jwt.ErrTokenInvalidAudience))
	}
	if c.Subject == "" {
		return Claims{}, unauthorized(fmt.Errorf("%w: sub", jwt.ErrTokenRequiredClaimMissing))
	}
	return Claims{Subject: c.Subject, ExpiresAt: c.ExpiresAt.Unix()}, nil
}

func unauthorized(detail error) error {
	return fmt.Errorf("%w: %w", ErrUnauthorized, detail)
}

// keyFor is the parser's key lookup: it makes sure the token's key is
// cached, fetching the JWKS when needed, then lets keyfunc pick the key
// (which also checks that the key's `alg`, when it has one, is the token's).
func (v *JWKSVerifier) keyFor(ctx context.Context) jwt.Keyfunc {
	lookup := v.kf.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		// Without a `kid` keyfunc would try every key and never refetch;
		// every issuer this service trusts names its keys.
		kid, _ := t.Header[jwkset.HeaderKID].(string)
		if kid == "" {
			return nil, errors.New("token header has no kid")
		}
		if err := v.ensureKey(ctx, kid); err != nil {
			return nil, err
		}
		return lookup(t)
	}
}

// ensureKey fetches the JWKS when kid is unknown or the keys are older than
// MaxKeyAge, at most once per MinRefreshInterval.
func (v *JWKSVerifier) ensureKey(ctx context.Context, kid string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.opts.Now()
	_, err := v.keys.KeyRead(ctx, kid)
	known := err == nil
	if known && now.Sub(v.fetchedAt) < v.opts.MaxKeyAge {
		return nil
	}
	if !v.triedAt.IsZero() && now.Sub(v.triedAt) < v.opts.MinRefreshInterval {
		if known {
			return nil // stale but usable until the next allowed fetch
		}
		return fmt.Errorf("unknown kid %s (JWKS refetch rate-limited: last attempt %s ago)", quoteKID(kid), now.Sub(v.triedAt).Round(time.Second))
	}
	v.triedAt = now
	keys, err := v.fetch(ctx)
	if err != nil {
		if known {
			// The issuer is unreachable; availability beats freshness.
			return nil
		}
		return fmt.Errorf("fetch JWKS: %w", err)
	}
	if err := v.keys.KeyReplaceAll(ctx, keys); err != nil {
		return fmt.Errorf("store JWKS: %w", err)
	}
	v.fetchedAt = now
	if _, err := v.keys.KeyRead(ctx, kid); err != nil {
		return fmt.Errorf("unknown kid %s (not in the issuer's JWKS)", quoteKID(kid))
	}
	return nil
}

// quoteKID quotes a token's kid for a log line, cut short: it is chosen by
// whoever made the token and may be as long as the token.
func quoteKID(kid string) string {
	const max = 64
	if len(kid) > max {
		return strconv.Quote(kid[:max]) + "…"
	}
	return strconv.Quote(kid)
}

// fetch downloads and parses the JWKS. A key that does not parse is
// skipped rather than failing the set: one odd entry (an unsupported curve,
// a symmetric key) must not stop the issuer's good keys from verifying, and
// a token naming the odd key is refused as an unknown kid.
func (v *JWKSVerifier) fetch(ctx context.Context) ([]jwkset.JWK, error) {
	ctx, cancel := context.WithTimeout(ctx, v.opts.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.opts.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", v.opts.URL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", v.opts.URL, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("%s: JWKS larger than %d bytes", v.opts.URL, maxJWKSBytes)
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("%s: not a JWKS: %w", v.opts.URL, err)
	}
	keys := make([]jwkset.JWK, 0, len(set.Keys))
	for _, m := range set.Keys {
		// Public material only: a JWKS that leaked private parts must not
		// make them usable here.
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			continue
		}
		keys = append(keys, k)
	}
	return keys, nil
}
