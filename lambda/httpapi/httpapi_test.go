package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/httpapi"
)

func TestBase64BodiesAreDecoded(t *testing.T) {
	// API Gateway base64-encodes bodies it does not take for text; the
	// router must decode them before the route reads the JSON.
	tests := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"valid base64", base64.StdEncoding.EncodeToString([]byte(`{"name":"b64","text":"ok"}`)), 201, ""},
		{"invalid base64", "not base64!", 400, errcode.BadRequest},
	}
	a := newAPI(t, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := request("alice", "POST /prompts", nil, nil, tt.body)
			ev.IsBase64Encoded = true
			resp, err := a.prompts.Handle(t.Context(), ev)
			if err != nil || resp.StatusCode != tt.status {
				t.Fatalf("%d %v %s, want %d", resp.StatusCode, err, resp.Body, tt.status)
			}
			if resp.Headers["Content-Type"] != "application/json" {
				t.Errorf("content type %q", resp.Headers["Content-Type"])
			}
			if tt.code != "" {
				var body map[string]any
				if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
					t.Fatalf("body is not JSON: %q", resp.Body)
				}
				checkError(t, body, tt.code)
			}
		})
	}
}

// JSON bodies are read by programs, not browsers: <, > and & go out as
// they are, not as \u003c, \u003e and \u0026.
func TestBodiesLeaveHTMLCharactersUnescaped(t *testing.T) {
	const text = "if a < b && b > c { return <b>&amp;</b> }"
	a := newAPI(t, 0)
	convID, _ := a.seedTexts(t, "alice", []string{text})
	if _, err := a.store.RenameConversation(t.Context(), "alice", convID, text, time.Now()); err != nil {
		t.Fatal(err)
	}
	promptID := a.seedPrompt(t, "alice", "<name>", text)

	tests := []struct {
		name     string
		rt       *httpapi.Router
		routeKey string
		params   map[string]string
		body     string
		want     string // in the body as written
	}{
		{"a conversation and its messages", a.conversations, "GET /conversations/{id}", map[string]string{"id": convID}, "", text},
		{"the conversation list", a.conversations, "GET /conversations", nil, "", text},
		{"a renamed conversation", a.conversations, "PATCH /conversations/{id}", map[string]string{"id": convID}, `{"title":"<i>&</i>"}`, "<i>&</i>"},
		{"a prompt", a.prompts, "GET /prompts/{id}", map[string]string{"id": promptID}, "", text},
		{"a created prompt", a.prompts, "POST /prompts", nil, `{"name":"x","text":"` + text + `"}`, text},
		{"the prompt list", a.prompts, "GET /prompts", nil, "", text},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.rt.Handle(t.Context(), request("alice", tt.routeKey, tt.params, nil, tt.body))
			if err != nil || resp.StatusCode >= 300 {
				t.Fatalf("%d %v %s", resp.StatusCode, err, resp.Body)
			}
			if !strings.Contains(resp.Body, tt.want) {
				t.Errorf("body does not hold %q as written: %.300s", tt.want, resp.Body)
			}
			var decoded any
			if err := json.Unmarshal([]byte(resp.Body), &decoded); err != nil {
				t.Errorf("body is not JSON: %v", err)
			}
		})
	}
}

// No route can make the function return more than Lambda takes: a body
// whose envelope would pass MaxEnvelopeBytes is answered 500 internal, and
// the summary line says why. (The paged routes end their pages before it;
// this is the last resort for a bug.)
func TestRouterRefusesAnEnvelopeOverTheLimit(t *testing.T) {
	tests := []struct {
		name   string
		text   string // the body is {"text": text}
		status int
	}{
		{"1 MB of '<', 6 MB in the envelope", strings.Repeat("<", 1_000_100), 500},
		{"3 MB of quotes, 6 MB in the envelope", strings.Repeat(`"`, 1_500_100), 500},
		{"0.9 MB of '<', under the limit", strings.Repeat("<", 900_000), 200},
		{"4 MB of plain text, under the limit", strings.Repeat("x", 4_000_000), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logged bytes.Buffer
			rt := &httpapi.Router{Function: "test", Log: slog.New(slog.NewJSONHandler(&logged, nil)), Routes: map[string]httpapi.HandlerFunc{
				"GET /big": func(context.Context, *httpapi.Request) (httpapi.Response, *httpapi.Error) {
					return httpapi.Response{Status: 200, Body: map[string]string{"text": tt.text}}, nil
				},
			}}
			resp, err := rt.Handle(t.Context(), request("alice", "GET /big", nil, nil, ""))
			if err != nil || resp.StatusCode != tt.status {
				t.Fatalf("%d %v, want %d", resp.StatusCode, err, tt.status)
			}
			if n := envelopeSize(t, resp); n > httpapi.MaxEnvelopeBytes {
				t.Errorf("returns %d bytes, over %d", n, httpapi.MaxEnvelopeBytes)
			}
			if tt.status == 200 {
				return
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
				t.Fatalf("body is not JSON: %.200q", resp.Body)
			}
			checkError(t, body, errcode.Internal)
			var line struct{ Level, Outcome, Error string }
			if err := json.Unmarshal(logged.Bytes(), &line); err != nil || line.Level != "ERROR" || line.Outcome != "server_error" || !strings.Contains(line.Error, "envelope") {
				t.Errorf("log line %s (%v), want an ERROR server_error saying the envelope is too large", logged.String(), err)
			}
		})
	}
}
