package wsapi_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/p2/buddy/lambda/dev/fakeconnections"
	"github.com/p2/buddy/lambda/wsapi"
)

const testStage = "dev"

// connectionsAPI is the @connections stand-in (fakeconnections) behind a
// recorder of the raw requests, so a test sees what the SDK sent: method,
// connection id, signature. Every id is open but those closed; a few ids
// get answers API Gateway gives and the stand-in has no cause to.
type connectionsAPI struct {
	*httptest.Server
	rec      *fakeconnections.Recorder
	mu       sync.Mutex
	received []request
}

type request struct {
	method, connectionID, auth, amzDate string
	body                                []byte
}

// answers to special connection ids.
const (
	idBroken    = "broken"    // 500 InternalServerErrorException
	idForbidden = "forbidden" // 403 ForbiddenException
	idBareGone  = "bare-gone" // 410 without an error type
)

func newConnectionsAPI(t *testing.T, closed ...string) *connectionsAPI {
	t.Helper()
	api := &connectionsAPI{rec: &fakeconnections.Recorder{}}
	for _, id := range closed {
		api.rec.Close(id)
	}
	standIn := fakeconnections.NewHandler(brokenConnections{api.rec})
	api.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := strings.CutPrefix(r.URL.EscapedPath(), "/"+testStage+"/@connections/")
		id, _ := url.PathUnescape(raw)
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		api.mu.Lock()
		api.received = append(api.received, request{r.Method, id, r.Header.Get("Authorization"), r.Header.Get("X-Amz-Date"), body})
		api.mu.Unlock()
		switch id {
		case idForbidden:
			w.Header().Set("X-Amzn-ErrorType", "ForbiddenException")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"message":"Forbidden"}`)
		case idBareGone:
			w.WriteHeader(http.StatusGone)
		default:
			standIn.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(api.Close)
	return api
}

// brokenConnections fails every call for idBroken, which the stand-in
// answers with a 500.
type brokenConnections struct{ *fakeconnections.Recorder }

func (c brokenConnections) Post(ctx context.Context, id string, data []byte) error {
	if id == idBroken {
		return errors.New("boom")
	}
	return c.Recorder.Post(ctx, id, data)
}

func (c brokenConnections) Delete(ctx context.Context, id string) error {
	if id == idBroken {
		return errors.New("boom")
	}
	return c.Recorder.Delete(ctx, id)
}

func (api *connectionsAPI) endpoint() string { return api.URL + "/" + testStage }

func (api *connectionsAPI) requests() []request {
	api.mu.Lock()
	defer api.mu.Unlock()
	return append([]request(nil), api.received...)
}

// awsConfig is what a Lambda gets from its environment, with retries that
// do not sleep so the 5xx rows stay fast.
func awsConfig() aws.Config {
	return aws.Config{
		Region:      "eu-central-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			})
		},
	}
}

func TestConnectionsPosterPost(t *testing.T) {
	const liveID = "Ab+c/d=" // API Gateway ids are base64-like
	frame := wsapi.Encode(wsapi.Frame{Type: wsapi.TypeDelta, RequestID: "r", Text: "héllo <&> 👋\n"})
	tests := []struct {
		name       string
		id         string
		wantGone   bool
		wantErr    string // substring; empty with !wantGone means success
		wantPosted bool
	}{
		{name: "live connection receives the frame", id: liveID, wantPosted: true},
		{name: "closed connection is gone", id: "closed", wantGone: true},
		{name: "410 without an error type is gone", id: idBareGone, wantGone: true},
		{name: "server error is an error with its status", id: idBroken, wantErr: "status 500"},
		{name: "forbidden is an error with its status", id: idForbidden, wantErr: "status 403"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newConnectionsAPI(t, "closed")
			p := wsapi.NewConnectionsPoster(awsConfig(), api.endpoint())
			err := p.Post(context.Background(), tt.id, frame)

			switch {
			case tt.wantGone:
				if !errors.Is(err, wsapi.ErrGone) {
					t.Fatalf("err = %v, want ErrGone", err)
				}
			case tt.wantErr != "":
				if err == nil || errors.Is(err, wsapi.ErrGone) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want a non-gone error mentioning %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("Post: %v", err)
			}
			reqs := api.requests()
			if len(reqs) == 0 {
				t.Fatal("nothing reached the @connections API")
			}
			r := reqs[0]
			if r.method != http.MethodPost || r.connectionID != tt.id {
				t.Errorf("got %s for connection %q, want POST for %q", r.method, r.connectionID, tt.id)
			}
			if tt.wantPosted && string(r.body) != string(frame) {
				t.Errorf("body = %q, want the frame verbatim %q", r.body, frame)
			}
			if !strings.HasPrefix(r.auth, "AWS4-HMAC-SHA256 Credential=AKIDTEST/") ||
				!strings.Contains(r.auth, "/eu-central-1/execute-api/aws4_request") || r.amzDate == "" {
				t.Errorf("request is not SigV4-signed for execute-api: Authorization %q, X-Amz-Date %q", r.auth, r.amzDate)
			}
		})
	}
}

func TestConnectionsPosterDeleteConnection(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		wantErr string
	}{
		{name: "live connection is closed", id: "live"},
		{name: "already closed connection counts as closed", id: "closed"},
		{name: "server error is reported", id: idBroken, wantErr: "status 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newConnectionsAPI(t, "closed")
			p := wsapi.NewConnectionsPoster(awsConfig(), api.endpoint())
			err := p.DeleteConnection(context.Background(), tt.id)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("DeleteConnection: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
			}
			if r := api.requests(); len(r) == 0 || r[0].method != http.MethodDelete || r[0].connectionID != tt.id {
				t.Errorf("requests = %+v, want a DELETE for %q", r, tt.id)
			}
		})
	}
	t.Run("a closed connection can no longer be posted to", func(t *testing.T) {
		api := newConnectionsAPI(t, "closed")
		p := wsapi.NewConnectionsPoster(awsConfig(), api.endpoint())
		if err := p.DeleteConnection(context.Background(), "live"); err != nil {
			t.Fatal(err)
		}
		if err := p.Post(context.Background(), "live", []byte(`{"type":"pong"}`)); !errors.Is(err, wsapi.ErrGone) {
			t.Errorf("Post after delete = %v, want ErrGone", err)
		}
	})
}

func TestConnectionsPosterUnreachable(t *testing.T) {
	api := newConnectionsAPI(t)
	endpoint := api.endpoint()
	api.Close()
	err := wsapi.NewConnectionsPoster(awsConfig(), endpoint).Post(context.Background(), "x", []byte("{}"))
	if err == nil || errors.Is(err, wsapi.ErrGone) {
		t.Errorf("err = %v, want a connection failure that is not ErrGone", err)
	}
}

func TestEndpointFor(t *testing.T) {
	got := wsapi.EndpointFor("abc123.execute-api.eu-central-1.amazonaws.com", "prod")
	if want := "https://abc123.execute-api.eu-central-1.amazonaws.com/prod"; got != want {
		t.Errorf("EndpointFor = %q, want %q", got, want)
	}
}

func TestConnectionsKeepsOnePosterPerEndpoint(t *testing.T) {
	c := wsapi.NewConnections(awsConfig())
	a1, a2 := c.Poster("https://a.example/dev"), c.Poster("https://a.example/dev")
	b := c.Poster("https://b.example/dev")
	if a1 != a2 {
		t.Error("the same endpoint got two posters")
	}
	if a1 == b || b.Endpoint() != "https://b.example/dev" {
		t.Errorf("endpoints share a poster: %q and %q", a1.Endpoint(), b.Endpoint())
	}
}
