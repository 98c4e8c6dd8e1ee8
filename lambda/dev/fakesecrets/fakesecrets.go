// Package fakesecrets is an offline Secrets Manager: an http.Handler
// speaking the service's JSON 1.1 protocol for GetSecretValue and
// DescribeSecret, so the real aws-sdk-go-v2 client (BaseEndpoint set to the
// server's URL, any static credentials) runs against it unchanged. No
// Secrets Manager emulator can be installed here.
package fakesecrets

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// Operation names, as in X-Amz-Target.
const (
	GetSecretValue = "GetSecretValue"
	DescribeSecret = "DescribeSecret"
)

// arnPrefix makes ARNs of the real shape; the account is a placeholder.
const arnPrefix = "arn:aws:secretsmanager:us-east-1:000000000000:secret:"

type secret struct {
	value    *string // nil: created without a value
	version  int
	created  time.Time
	modified time.Time
}

// NewClient is the real SDK client, as a function builds it, pointed at a
// stand-in served at endpoint (any static credentials do: nothing checks
// them).
func NewClient(endpoint string) *secretsmanager.Client {
	return secretsmanager.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDSTANDIN", "standin-secret", ""),
		BaseEndpoint: aws.String(endpoint),
	})
}

// Server holds secrets by name. The zero value is not usable; call New.
type Server struct {
	mu      sync.Mutex
	secrets map[string]*secret
	calls   map[string]int
}

// New returns a server without secrets.
func New() *Server {
	return &Server{secrets: map[string]*secret{}, calls: map[string]int{}}
}

// Set creates the secret name, or gives it a new current value.
func (s *Server) Set(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	sec := s.secrets[name]
	if sec == nil {
		sec = &secret{created: now}
		s.secrets[name] = sec
	}
	sec.value, sec.modified = &value, now
	sec.version++
}

// Create creates the secret name without a value, as a stack does before
// the operator sets it: DescribeSecret finds it, GetSecretValue does not.
func (s *Server) Create(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secrets[name] == nil {
		now := time.Now()
		s.secrets[name] = &secret{created: now, modified: now}
	}
}

// Delete removes the secret name.
func (s *Server) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.secrets, name)
}

// Calls returns how many times op (GetSecretValue, DescribeSecret) was
// called, found or not.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// lookup finds a secret by name or by ARN, as the service does.
func (s *Server) lookup(id string) (string, *secret) {
	if sec := s.secrets[id]; sec != nil {
		return id, sec
	}
	for name, sec := range s.secrets {
		if arn(name) == id || strings.HasPrefix(id, arnPrefix+name+"-") {
			return name, sec
		}
	}
	return "", nil
}

// arn is the secret's ARN; the real one ends in six random characters.
func arn(name string) string { return arnPrefix + name + "-Fake00" }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "UnknownOperationException", "use POST")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeError(w, http.StatusBadRequest, "MissingAuthenticationTokenException", "Missing Authentication Token")
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.")
	if !ok || (op != GetSecretValue && op != DescribeSecret) {
		writeError(w, http.StatusBadRequest, "UnknownOperationException", "the stand-in serves GetSecretValue and DescribeSecret")
		return
	}
	var in struct {
		SecretID     string `json:"SecretId"`
		VersionStage string `json:"VersionStage"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || json.Unmarshal(body, &in) != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", "the body is not valid JSON")
		return
	}
	if in.SecretID == "" {
		writeError(w, http.StatusBadRequest, "InvalidParameterException", "SecretId is required")
		return
	}

	s.mu.Lock()
	s.calls[op]++
	w.Header().Set("x-amzn-RequestId", fmt.Sprintf("00000000-0000-0000-0000-%012d", s.calls[GetSecretValue]+s.calls[DescribeSecret]))
	name, sec := s.lookup(in.SecretID)
	var out map[string]any
	if sec != nil {
		out = map[string]any{"ARN": arn(name), "Name": name}
		switch op {
		case GetSecretValue:
			if sec.value != nil && (in.VersionStage == "" || in.VersionStage == "AWSCURRENT") {
				out["SecretString"] = *sec.value
				out["VersionId"] = fmt.Sprintf("00000000-0000-0000-0000-%012d", sec.version)
				out["VersionStages"] = []string{"AWSCURRENT"}
				out["CreatedDate"] = epoch(sec.modified)
			} else {
				out = nil
			}
		case DescribeSecret:
			out["CreatedDate"] = epoch(sec.created)
			out["LastChangedDate"] = epoch(sec.modified)
		}
	}
	s.mu.Unlock()

	switch {
	case sec == nil:
		writeError(w, http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
	case out == nil:
		writeError(w, http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT")
	default:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_ = json.NewEncoder(w).Encode(out)
	}
}

// epoch is the protocol's timestamp: seconds since the epoch, fractional.
func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-ErrorType", typ)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}
