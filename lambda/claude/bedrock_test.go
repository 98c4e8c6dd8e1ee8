package claude_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/dev/fakemodel"
)

func TestBedrockModelID(t *testing.T) {
	tests := []struct {
		name, id, region, want string
	}{
		{"an Anthropic id in a US region takes the us profile", "claude-opus-4-5-20251101", "us-east-1", "us.anthropic.claude-opus-4-5-20251101-v1:0"},
		{"an EU region takes the eu profile", "claude-sonnet-4-5-20250929", "eu-central-1", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{"an Asia-Pacific region takes the apac profile", "claude-haiku-4-5-20251001", "ap-southeast-2", "apac.anthropic.claude-haiku-4-5-20251001-v1:0"},
		{"GovCloud takes the us-gov profile", "claude-opus-4-5-20251101", "us-gov-west-1", "us-gov.anthropic.claude-opus-4-5-20251101-v1:0"},
		{"any other region takes the global profile", "claude-opus-4-5-20251101", "ca-central-1", "global.anthropic.claude-opus-4-5-20251101-v1:0"},
		{"an id with a version only gains the prefix", "claude-opus-4-5-20251101-v1:0", "us-west-2", "us.anthropic.claude-opus-4-5-20251101-v1:0"},
		{"a Bedrock model id is kept", "anthropic.claude-opus-4-5-20251101-v1:0", "us-east-1", "anthropic.claude-opus-4-5-20251101-v1:0"},
		{"a profile of another geography is kept", "eu.anthropic.claude-opus-4-5-20251101-v1:0", "us-east-1", "eu.anthropic.claude-opus-4-5-20251101-v1:0"},
		{"a global profile is kept", "global.anthropic.claude-opus-4-5-20251101-v1:0", "eu-west-1", "global.anthropic.claude-opus-4-5-20251101-v1:0"},
		{"an ARN is kept", "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-5-20251101-v1:0", "us-east-1", "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-5-20251101-v1:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := claude.BedrockModelID(tt.id, tt.region); got != tt.want {
				t.Errorf("BedrockModelID(%q, %q) = %q, want %q", tt.id, tt.region, got, tt.want)
			}
		})
	}
}

const (
	testAccessKey = "AKIDSTANDIN"
	testSecretKey = "standin-secret"
	testRegion    = "us-east-1"
)

// sigChecker is a Bedrock endpoint that verifies each request's SigV4
// signature by signing it again, then hands it to the stand-in.
type sigChecker struct {
	next     http.Handler
	mu       sync.Mutex
	problems []string
	paths    []string
}

func (c *sigChecker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	problem := verifySigV4(r, body)
	c.mu.Lock()
	c.paths = append(c.paths, r.URL.EscapedPath())
	if problem != "" {
		c.problems = append(c.problems, problem)
	}
	c.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	c.next.ServeHTTP(w, r)
}

// report fails t with each request whose signature was wrong and returns
// the paths of all requests.
func (c *sigChecker) report(t *testing.T) []string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.problems {
		t.Error(p)
	}
	return slices.Clone(c.paths)
}

// startBedrock serves a stand-in behind a sigChecker on 127.0.0.1 and
// returns a Bedrock model of it, with idle timeout, the stand-in and the
// checker.
func startBedrock(t *testing.T, idle time.Duration) (*claude.Bedrock, *fakemodel.Server, *sigChecker) {
	t.Helper()
	fm := fakemodel.New(fakemodel.Options{})
	check := &sigChecker{next: fm}
	ts := httptest.NewServer(check)
	t.Cleanup(func() { fm.Close(); ts.Close() })
	m, err := claude.NewBedrock(context.Background(), bedrockConfig(ts.URL), claude.BedrockOptions{IdleTimeout: idle})
	if err != nil {
		t.Fatal(err)
	}
	return m, fm, check
}

func verifySigV4(r *http.Request, body []byte) string {
	auth := r.Header.Get("Authorization")
	scope := "Credential=" + testAccessKey + "/"
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 "+scope) || !strings.Contains(auth, "/"+testRegion+"/bedrock/aws4_request") {
		return fmt.Sprintf("Authorization %q is not SigV4 for bedrock in %s", auth, testRegion)
	}
	_, signed, _ := strings.Cut(auth, "SignedHeaders=")
	signed, _, _ = strings.Cut(signed, ",")
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return "X-Amz-Date: " + err.Error()
	}
	again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	for _, name := range strings.Split(signed, ";") {
		if name != "host" && name != "content-length" {
			again.Header[http.CanonicalHeaderKey(name)] = r.Header.Values(name)
		}
	}
	hash := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(hash[:]), "bedrock", testRegion, at); err != nil {
		return "re-sign: " + err.Error()
	}
	if got := again.Header.Get("Authorization"); got != auth {
		return fmt.Sprintf("signature does not match the request:\n got  %s\n want %s", auth, got)
	}
	return ""
}

func bedrockConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       testRegion,
		Credentials:  credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

func TestBedrockStream(t *testing.T) {
	t.Setenv("AWS_BEARER_TOKEN_BEDROCK", "") // SigV4, not a bearer token from the environment
	const profile = "us.anthropic.claude-opus-4-5-20251101-v1:0"
	tests := []struct {
		name        string
		turn        string
		wantText    string
		wantKind    claude.Kind
		wantStatus  int
		wantStarted bool
		wantTimeout bool
		wantCalls   int
	}{
		{name: "the reply streams through Bedrock's event stream", turn: "hi [[tokens=3]]", wantText: "Buddy offline stand-in ", wantCalls: 1},
		{name: "throttling on every attempt is rate_limited", turn: "hi [[fault=429]]", wantKind: claude.KindRateLimited, wantStatus: 429, wantCalls: 3},
		{name: "a validation error is bad_request", turn: "hi [[fault=400]]", wantKind: claude.KindBadRequest, wantStatus: 400, wantCalls: 1},
		{name: "an internal error on every attempt is upstream_error", turn: "hi [[fault=500]]", wantKind: claude.KindUpstream, wantStatus: 500, wantCalls: 3},
		{name: "a throttling exception in the stream is rate_limited and started", turn: "hi [[fault=midstream]] [[after=2]]", wantText: "Buddy offline ", wantKind: claude.KindRateLimited, wantStarted: true, wantCalls: 1},
		{name: "a silent stream times out", turn: "hi [[fault=hang]]", wantKind: claude.KindUpstream, wantTimeout: true, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, fm, check := startBedrock(t, time.Second) // only the silent stream waits it out
			h := &recorder{}
			res, err := m.Stream(context.Background(), request(tt.turn), h)

			if tt.wantKind == "" {
				if err != nil {
					t.Fatalf("Stream: %v", err)
				}
				if res.Model != "standin/"+profile || res.StopReason != "end_turn" || res.Usage.OutputTokens != 3 || res.Usage.InputTokens != 2 {
					t.Errorf("Result = %+v, want the stand-in's model %q, end_turn, 2 in / 3 out", res, profile)
				}
			} else {
				var e *claude.Error
				if !errors.As(err, &e) || e.Kind != tt.wantKind || e.Status != tt.wantStatus || e.Started != tt.wantStarted {
					t.Fatalf("Stream error = %v, want {Kind %s, Status %d, Started %v}", err, tt.wantKind, tt.wantStatus, tt.wantStarted)
				}
				if tt.wantTimeout != errors.Is(err, claude.ErrIdleTimeout) {
					t.Errorf("Stream error = %v; timeout expected: %v", err, tt.wantTimeout)
				}
			}
			if got := h.text(); got != tt.wantText {
				t.Errorf("text = %q, want %q", got, tt.wantText)
			}
			if got := fm.Calls(); got != tt.wantCalls {
				t.Errorf("Bedrock saw %d requests, want %d", got, tt.wantCalls)
			}

			body, ok := fm.LastRequest()
			switch {
			case !ok:
				t.Fatal("no request recorded")
			case !body.Bedrock || body.Model != profile:
				t.Errorf("request went to model %q (Bedrock path: %v), want %q", body.Model, body.Bedrock, profile)
			case body.Has("model") || body.Has("stream"):
				t.Error("the body carries model or stream, which Bedrock rejects")
			case body.AnthropicVersion != "bedrock-2023-05-31":
				t.Errorf("anthropic_version = %q", body.AnthropicVersion)
			case body.Temperature == nil || *body.Temperature != 0.3 || body.Has("top_p"):
				t.Error("sampling fields were not sent as on the Anthropic path")
			}
			if paths, want := check.report(t), "/model/us.anthropic.claude-opus-4-5-20251101-v1%3A0/invoke-with-response-stream"; len(paths) == 0 || paths[0] != want {
				t.Errorf("paths = %q, want %q", paths, want)
			}
		})
	}
}

func TestNewBedrockNeedsRegionAndCredentials(t *testing.T) {
	t.Setenv("AWS_BEARER_TOKEN_BEDROCK", "")
	tests := []struct {
		name string
		edit func(*aws.Config)
		ok   bool
	}{
		{name: "region and credentials are enough", edit: func(*aws.Config) {}, ok: true},
		{name: "no region is refused", edit: func(c *aws.Config) { c.Region = "" }},
		{name: "no credentials are refused", edit: func(c *aws.Config) { c.Credentials = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := bedrockConfig("http://127.0.0.1:1")
			tt.edit(&cfg)
			_, err := claude.NewBedrock(context.Background(), cfg, claude.BedrockOptions{})
			if (err == nil) != tt.ok {
				t.Errorf("NewBedrock error = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
