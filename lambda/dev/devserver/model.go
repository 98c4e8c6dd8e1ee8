package devserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/p2/buddy/lambda/dev/fakemodel"
)

// StandInModelPrefix marks the stand-in's replies: fakemodel reports the
// model "standin/<model id>" in message_start, which the handlers pass on
// in every `start` frame and store with every reply.
const StandInModelPrefix = "standin/"

// staticKey is a claude.KeySource holding a key from the environment; the
// dev server never writes it anywhere.
type staticKey string

func (k staticKey) Key(context.Context) (string, error) {
	if k == "" {
		return "", errors.New("devserver: no API key")
	}
	return string(k), nil
}

// Invalidate has nothing to refetch: a rejected key stays rejected.
func (staticKey) Invalidate() {}

// StandIn is the offline model: lambda/dev/fakemodel behind its own
// loopback listener, which the production Anthropic client reaches through
// ANTHROPIC_BASE_URL.
type StandIn struct {
	*fakemodel.Server
	// URL is the base URL the model client uses.
	URL string
	srv *http.Server
}

func (s *StandIn) close() error {
	// Ends the streams still running: a [[fault=hang]] would otherwise
	// hold Shutdown until its client gives up.
	s.Server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return errors.Join(err, s.srv.Close())
	}
	return nil
}

// model is the model side of a run: where the client goes and with which
// key.
type model struct {
	baseURL string // "" for api.anthropic.com
	keys    staticKey
	standIn *StandIn
	close   func()
}

func startModel(cfg Config) (model, error) {
	if cfg.AnthropicAPIKey != "" {
		return model{keys: staticKey(cfg.AnthropicAPIKey), close: func() {}}, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return model{}, fmt.Errorf("devserver: stand-in listener: %w", err)
	}
	fm := fakemodel.New(fakemodel.Options{})
	// Only the model client calls it, never a page (loopback.go says why).
	h := guard("model stand-in", ownHosts(ln.Addr()), nil, cfg.Log, fm)
	si := &StandIn{Server: fm, URL: "http://" + ln.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = si.srv.Serve(ln) }()
	return model{
		baseURL: si.URL,
		// The Anthropic client sends a key with every request; the
		// stand-in accepts any.
		keys:    staticKey("standin-no-key"),
		standIn: si,
		close:   func() { _ = si.close() },
	}, nil
}
