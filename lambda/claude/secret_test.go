package claude_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/dev/fakeclock"
	"github.com/p2/buddy/lambda/dev/fakemodel"
	"github.com/p2/buddy/lambda/dev/fakesecrets"
)

const secretName = "buddy-v1"

// secretsClient is the real SDK client pointed at h on 127.0.0.1.
func secretsClient(t *testing.T, h http.Handler) *secretsmanager.Client {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return fakesecrets.NewClient(ts.URL)
}

func TestSecretKeysRejectsUnusableSecrets(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*fakesecrets.Server)
		want  error
	}{
		{name: "a missing secret is not found", setup: func(*fakesecrets.Server) {}, want: claude.ErrSecretNotFound},
		{name: "a secret created without a value is not found", setup: func(s *fakesecrets.Server) { s.Create(secretName) }, want: claude.ErrSecretNotFound},
		{name: "the stack's placeholder is not configured", setup: func(s *fakesecrets.Server) { s.Set(secretName, `{"api_key":"REPLACE_ME"}`) }, want: claude.ErrKeyNotConfigured},
		{name: "another placeholder is not configured", setup: func(s *fakesecrets.Server) { s.Set(secretName, `{"api_key":"changeme-secret-value"}`) }, want: claude.ErrKeyNotConfigured},
		{name: "an empty key is not configured", setup: func(s *fakesecrets.Server) { s.Set(secretName, `{"api_key":"  "}`) }, want: claude.ErrKeyNotConfigured},
		{name: "a secret without api_key is not configured", setup: func(s *fakesecrets.Server) { s.Set(secretName, `{"key":"sk-ant-secret-value"}`) }, want: claude.ErrKeyNotConfigured},
		{name: "a bare key that is not JSON is not configured", setup: func(s *fakesecrets.Server) { s.Set(secretName, `sk-ant-secret-value`) }, want: claude.ErrKeyNotConfigured},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakesecrets.New()
			tt.setup(srv)
			keys := claude.NewSecretKeys(secretsClient(t, srv), secretName, 0)
			key, err := keys.Key(context.Background())
			if !errors.Is(err, tt.want) || key != "" {
				t.Fatalf("Key() = %q, %v; want error %v", key, err, tt.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, secretName) {
				t.Errorf("error %q does not name the secret", msg)
			}
			for _, leak := range []string{"REPLACE_ME", "changeme", "secret-value"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q shows the secret's value", msg)
				}
			}
		})
	}
}

func TestSecretKeysCachesForTheTTL(t *testing.T) {
	srv := fakesecrets.New()
	srv.Set(secretName, `{"api_key":"sk-ant-one"}`)
	c := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	keys := claude.NewSecretKeys(secretsClient(t, srv), secretName, time.Minute)
	keys.Now = c.Now
	ctx := context.Background()

	steps := []struct {
		name      string
		before    func()
		wantKey   string
		wantCalls int
	}{
		{name: "the first Key reads the secret", before: func() {}, wantKey: "sk-ant-one", wantCalls: 1},
		{name: "within the TTL the cached key is served", before: func() { c.Advance(time.Minute - time.Second) }, wantKey: "sk-ant-one", wantCalls: 1},
		{name: "a rotation is not seen before the TTL ends", before: func() { srv.Set(secretName, `{"api_key":"sk-ant-two"}`) }, wantKey: "sk-ant-one", wantCalls: 1},
		{name: "after the TTL the secret is read again", before: func() { c.Advance(time.Second) }, wantKey: "sk-ant-two", wantCalls: 2},
		{name: "Invalidate forces a read before the TTL ends", before: func() { srv.Set(secretName, `{"api_key":"sk-ant-three"}`); keys.Invalidate() }, wantKey: "sk-ant-three", wantCalls: 3},
		{name: "failures are not cached", before: func() { srv.Delete(secretName); keys.Invalidate() }, wantCalls: 4},
		{name: "a value set after a failure is read at once", before: func() { srv.Set(secretName, `{"api_key":"sk-ant-four"}`) }, wantKey: "sk-ant-four", wantCalls: 5},
	}
	for _, s := range steps {
		s.before()
		key, err := keys.Key(ctx)
		if (err != nil) != (s.wantKey == "") || key != s.wantKey {
			t.Errorf("%s: Key() = %q, %v; want %q", s.name, key, err, s.wantKey)
		}
		if got := srv.Calls(fakesecrets.GetSecretValue); got != s.wantCalls {
			t.Errorf("%s: %d GetSecretValue calls, want %d", s.name, got, s.wantCalls)
		}
	}
}

// gate holds GetSecretValue until opened, so concurrent callers pile up
// behind one fetch.
type gate struct {
	next http.Handler
	open chan struct{}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	<-g.open
	g.next.ServeHTTP(w, r)
}

func TestSecretKeysConcurrentCallersShareOneFetch(t *testing.T) {
	srv := fakesecrets.New()
	srv.Set(secretName, `{"api_key":"sk-ant-shared"}`)
	g := &gate{next: srv, open: make(chan struct{})}
	keys := claude.NewSecretKeys(secretsClient(t, g), secretName, 0)

	// A caller that gives up while the fetch is held gets its context's
	// error, and does not cancel the fetch for the others.
	ctx, cancel := context.WithCancelCause(context.Background())
	errLeft := errors.New("caller left")
	cancel(errLeft)
	if _, err := keys.Key(ctx); !errors.Is(err, errLeft) {
		t.Errorf("Key with a cancelled context = %v, want %v", err, errLeft)
	}

	const callers = 16
	var wg sync.WaitGroup
	got := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { got[i], errs[i] = keys.Key(context.Background()) })
	}
	close(g.open)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || got[i] != "sk-ant-shared" {
			t.Errorf("caller %d: Key() = %q, %v", i, got[i], errs[i])
		}
	}
	if n := srv.Calls(fakesecrets.GetSecretValue); n != 1 {
		t.Errorf("%d GetSecretValue calls for %d callers, want 1", n, callers)
	}
}

func TestAnthropicRereadsARotatedSecretOn401(t *testing.T) {
	secrets := fakesecrets.New()
	secrets.Set(secretName, `{"api_key":"sk-ant-old"}`)
	keys := claude.NewSecretKeys(secretsClient(t, secrets), secretName, 0)
	if _, err := keys.Key(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The operator rotates the key: the API only accepts the new one, the
	// cache still holds the old one.
	secrets.Set(secretName, `{"api_key":"sk-ant-new"}`)
	fm, url := startFake(t, fakemodel.Options{APIKey: "sk-ant-new"})
	m := claude.NewAnthropic(claude.AnthropicOptions{Keys: keys, BaseURL: url})

	if _, err := m.Stream(context.Background(), request("hi [[tokens=2]]"), &recorder{}); err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if fm.Calls() != 2 || secrets.Calls(fakesecrets.GetSecretValue) != 2 {
		t.Errorf("%d model calls and %d secret reads, want 2 and 2", fm.Calls(), secrets.Calls(fakesecrets.GetSecretValue))
	}
}
