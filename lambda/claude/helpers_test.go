package claude_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/fakemodel"
)

// recorder is a Handler that keeps what it was fed and can fail on cue.
type recorder struct {
	model  string
	starts int
	texts  []string
	// startErr is returned by OnStart; textErr by the failAt-th OnText.
	startErr error
	failAt   int
	textErr  error
}

func (r *recorder) OnStart(_ context.Context, model string) error {
	r.starts++
	r.model = model
	return r.startErr
}

func (r *recorder) OnText(_ context.Context, text string) error {
	r.texts = append(r.texts, text)
	if len(r.texts) == r.failAt {
		return r.textErr
	}
	return nil
}

func (r *recorder) text() string { return strings.Join(r.texts, "") }

// rotatingKeys hands out keys[i], moving to the next key on Invalidate, as
// a secret does when the operator rotates the key.
type rotatingKeys struct {
	mu            sync.Mutex
	keys          []string
	i             int
	invalidations int
}

func (k *rotatingKeys) Key(context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys[min(k.i, len(k.keys)-1)], nil
}

func (k *rotatingKeys) Invalidate() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.i++
	k.invalidations++
}

func staticKeys(key string) *rotatingKeys { return &rotatingKeys{keys: []string{key}} }

// startFake serves a stand-in on 127.0.0.1 and returns it with its URL.
func startFake(t *testing.T, opts fakemodel.Options) (*fakemodel.Server, string) {
	t.Helper()
	fm := fakemodel.New(opts)
	ts := httptest.NewServer(fm)
	t.Cleanup(func() {
		fm.Close() // release hanging streams first, or ts.Close waits for them
		ts.Close()
	})
	return fm, ts.URL
}

func request(turn string) claude.Request {
	temp := 0.3
	return claude.Request{
		Model:       config.DefaultModelID,
		MaxTokens:   1024,
		Turns:       []claude.Turn{{Role: "user", Text: turn}},
		Temperature: &temp,
		TopK:        40,
	}
}
