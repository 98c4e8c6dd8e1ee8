// Package awsstub answers, on loopback, the AWS calls a Buddy function makes
// besides DynamoDB: Secrets Manager GetSecretValue, Lambda Invoke (the reply
// job), API Gateway @connections posts, and the issuer's JWKS. The functions
// run unmodified with their endpoints pointed here, so the benchmark never
// leaves the machine and can count what the functions send.
//
// DynamoDB calls are refused with a non-retryable error unless the caller
// points DynamoDB elsewhere (AWS_ENDPOINT_URL_DYNAMODB at a local store):
// the cold start harness needs them to fail fast, not to succeed.
package awsstub

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxBody bounds a request body; API Gateway accepts at most 128 KB per
// @connections message and Lambda 256 KB per async payload.
const maxBody = 1 << 20

// Post is one @connections post.
type Post struct {
	ConnectionID string
	Body         []byte
	At           time.Time
}

// Stub is the server. Fields set before Start configure it.
type Stub struct {
	// SecretName and SecretString answer GetSecretValue.
	SecretName, SecretString string
	// OnInvoke receives the payload of each Lambda Invoke; nil accepts and
	// drops it.
	OnInvoke func(function string, payload []byte)
	// OnPost receives each @connections post; it runs on the request's
	// goroutine, so the post returns after it (as a real post returns
	// after API Gateway took the frame).
	OnPost func(Post)
	// PostDelay, when set, is added to every @connections post to model
	// the latency of API Gateway from inside AWS.
	PostDelay time.Duration

	URL string // http://127.0.0.1:port, set by Start

	ln   net.Listener
	srv  *http.Server
	jwks []byte

	mu     sync.Mutex
	counts map[string]int // calls per operation, for diagnostics
}

// Start listens on a free loopback port.
func (s *Stub) Start() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	// A valid key set, so that a verifier fetching the JWKS at init (or on
	// first use) does the work it does in AWS.
	s.jwks, _ = json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "bench",
		"x": base64.RawURLEncoding.EncodeToString(key.X.FillBytes(make([]byte, 32))),
		"y": base64.RawURLEncoding.EncodeToString(key.Y.FillBytes(make([]byte, 32))),
	}}})
	s.counts = map[string]int{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.ln = ln
	s.URL = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// Close stops the server.
func (s *Stub) Close() error { return s.srv.Close() }

// Counts returns how many calls each operation received.
func (s *Stub) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

func (s *Stub) count(op string) {
	s.mu.Lock()
	s.counts[op]++
	s.mu.Unlock()
}

// ServeHTTP routes by the AWS JSON protocol's target header, then by path.
func (s *Stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		awsError(w, http.StatusRequestEntityTooLarge, "application/json", "PayloadTooLargeException", "request too large")
		return
	}
	target := r.Header.Get("X-Amz-Target")
	switch {
	case strings.HasPrefix(target, "secretsmanager."):
		s.count(target)
		s.secrets(w, strings.TrimPrefix(target, "secretsmanager."), body)
	case strings.HasPrefix(target, "DynamoDB_20120810."):
		s.count(target)
		awsError(w, http.StatusBadRequest, "application/x-amz-json-1.0",
			"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "benchmark stub: no DynamoDB here")
	case r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/@connections/"):
		s.count("PostToConnection")
		_, id, _ := strings.Cut(r.URL.Path, "/@connections/")
		if s.PostDelay > 0 {
			time.Sleep(s.PostDelay)
		}
		if s.OnPost != nil {
			s.OnPost(Post{ConnectionID: id, Body: body, At: time.Now()})
		}
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/2015-03-31/functions/") && strings.HasSuffix(r.URL.Path, "/invocations"):
		s.count("Invoke")
		fn := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/2015-03-31/functions/"), "/invocations")
		if s.OnInvoke != nil {
			s.OnInvoke(fn, body)
		}
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/.well-known/jwks.json"):
		s.count("JWKS")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.jwks)
	default:
		s.count("unknown " + r.Method + " " + r.URL.Path)
		awsError(w, http.StatusNotFound, "application/json", "UnknownOperationException", "benchmark stub: unknown call")
	}
}

func (s *Stub) secrets(w http.ResponseWriter, op string, body []byte) {
	var in struct{ SecretId string }
	_ = json.Unmarshal(body, &in)
	switch {
	case op == "GetSecretValue" && in.SecretId == s.SecretName:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"ARN":           "arn:aws:secretsmanager:eu-west-1:000000000000:secret:" + s.SecretName + "-AbCdEf",
			"Name":          s.SecretName,
			"SecretString":  s.SecretString,
			"VersionId":     "00000000-0000-0000-0000-000000000001",
			"VersionStages": []string{"AWSCURRENT"},
			"CreatedDate":   float64(time.Now().Unix()),
		})
	case op == "GetSecretValue":
		awsError(w, http.StatusBadRequest, "application/x-amz-json-1.1", "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
	default:
		awsError(w, http.StatusBadRequest, "application/x-amz-json-1.1", "InvalidRequestException", "benchmark stub: unsupported operation "+op)
	}
}

func awsError(w http.ResponseWriter, status int, contentType, typ, msg string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}
