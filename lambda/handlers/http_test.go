package handlers_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"context"
)

// These drive the three HTTP functions with API Gateway HTTP API events, as
// its JWT authorizer delivers them.

func TestConversationsAPI(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	alice := h.connect("alice")
	var ids []string
	for i := 0; i < 3; i++ {
		f := h.send(alice, sendFrame(fmt.Sprintf("r%d", i), "", "", fmt.Sprintf("conversation %d", i)))
		ids = append(ids, f[0].ConversationID)
	}
	bobConv := h.send(h.connect("bob"), sendFrame("b", "", "", "bob's"))[0].ConversationID
	id := func(s string) map[string]string { return map[string]string{"id": s} }

	// Newest first, paginated.
	status, body := h.http("conversations", "alice", "GET", "/conversations", "GET /conversations", nil, map[string]string{"limit": "2"}, "")
	if status != 200 {
		t.Fatalf("list: %d %v", status, body)
	}
	page := body["conversations"].([]any)
	if len(page) != 2 || page[0].(map[string]any)["id"] != ids[2] || page[1].(map[string]any)["id"] != ids[1] || body["nextCursor"] == nil {
		t.Fatalf("first page %v", body)
	}
	_, body = h.http("conversations", "alice", "GET", "/conversations", "GET /conversations", nil, map[string]string{"limit": "2", "cursor": body["nextCursor"].(string)}, "")
	if page := body["conversations"].([]any); len(page) != 1 || page[0].(map[string]any)["id"] != ids[0] || body["nextCursor"] != nil {
		t.Fatalf("second page %v", body)
	}

	tests := []struct {
		name     string
		user     string
		method   string
		routeKey string
		params   map[string]string
		query    map[string]string
		body     string
		status   int
		code     string
	}{
		{"no token", "", "GET", "GET /conversations", nil, nil, "", 401, "unauthorized"},
		{"get own", "alice", "GET", "GET /conversations/{id}", id(ids[0]), nil, "", 200, ""},
		{"get someone else's", "alice", "GET", "GET /conversations/{id}", id(bobConv), nil, "", 404, "not_found"},
		{"get unknown", "alice", "GET", "GET /conversations/{id}", id("01JD0000000000000000000000"), nil, "", 404, "not_found"},
		{"get junk id", "alice", "GET", "GET /conversations/{id}", id("'; DROP TABLE"), nil, "", 404, "not_found"},
		{"bad limit", "alice", "GET", "GET /conversations", nil, map[string]string{"limit": "0"}, "", 400, "bad_request"},
		{"bad cursor", "alice", "GET", "GET /conversations", nil, map[string]string{"cursor": "garbage"}, "", 400, "bad_request"},
		{"rename", "alice", "PATCH", "PATCH /conversations/{id}", id(ids[0]), nil, `{"title":"Renamed"}`, 200, ""},
		{"rename someone else's", "alice", "PATCH", "PATCH /conversations/{id}", id(bobConv), nil, `{"title":"Mine now"}`, 404, "not_found"},
		{"rename without title", "alice", "PATCH", "PATCH /conversations/{id}", id(ids[0]), nil, `{}`, 400, "bad_request"},
		{"rename to blank", "alice", "PATCH", "PATCH /conversations/{id}", id(ids[0]), nil, `{"title":"  "}`, 400, "bad_request"},
		{"rename too long", "alice", "PATCH", "PATCH /conversations/{id}", id(ids[0]), nil, `{"title":"` + strings.Repeat("x", 201) + `"}`, 400, "bad_request"},
		{"rename with unknown field", "alice", "PATCH", "PATCH /conversations/{id}", id(ids[0]), nil, `{"title":"a","owner":"bob"}`, 400, "bad_request"},
		{"rename with invalid JSON", "alice", "PATCH", "PATCH /conversations/{id}", id(ids[0]), nil, `{"title":`, 400, "bad_request"},
		{"delete someone else's", "alice", "DELETE", "DELETE /conversations/{id}", id(bobConv), nil, "", 404, "not_found"},
		{"delete own", "alice", "DELETE", "DELETE /conversations/{id}", id(ids[1]), nil, "", 204, ""},
		{"delete again", "alice", "DELETE", "DELETE /conversations/{id}", id(ids[1]), nil, "", 404, "not_found"},
		{"get deleted", "alice", "GET", "GET /conversations/{id}", id(ids[1]), nil, "", 404, "not_found"},
		{"unknown route", "alice", "POST", "POST /conversations", nil, nil, "{}", 404, "not_found"},
		{"over-size body", "alice", "PATCH", "PATCH /conversations/{id}", id(ids[0]), nil, strings.Repeat(" ", 128*1024+1), 413, "too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.http("conversations", tt.user, tt.method, "/conversations", tt.routeKey, tt.params, tt.query, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, body)
			}
			if tt.code != "" {
				e, _ := body["error"].(map[string]any)
				if e == nil || e["code"] != tt.code || e["message"] == "" {
					t.Errorf("error body %v, want code %s", body, tt.code)
				}
			}
		})
	}
	_, body = h.http("conversations", "alice", "GET", "/", "GET /conversations/{id}", id(ids[0]), nil, "")
	if body["title"] != "Renamed" {
		t.Errorf("rename not stored: %v", body["title"])
	}
	if c, m := h.counts("bob"); c != 1 || m != 2 {
		t.Errorf("bob's data changed: %d conversations, %d messages", c, m)
	}
}

func TestPromptsAPI(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	status, created := h.http("prompts", "alice", "POST", "/prompts", "POST /prompts", nil, nil, `{"name":"Tutor","text":"Explain step by step."}`)
	if status != 201 || created["id"] == "" || created["promptId"] != created["id"] || created["name"] != "Tutor" {
		t.Fatalf("create: %d %v", status, created)
	}
	pid := created["id"].(string)
	_, bobP := h.http("prompts", "bob", "POST", "/prompts", "POST /prompts", nil, nil, `{"name":"Bob","text":"Bob's."}`)
	bobID := bobP["id"].(string)
	id := func(s string) map[string]string { return map[string]string{"id": s} }

	tests := []struct {
		name     string
		user     string
		routeKey string
		params   map[string]string
		body     string
		status   int
		check    func(map[string]any) bool
	}{
		{"list own only", "alice", "GET /prompts", nil, "", 200, func(b map[string]any) bool {
			l := b["prompts"].([]any)
			return len(l) == 1 && l[0].(map[string]any)["id"] == pid
		}},
		{"get own", "alice", "GET /prompts/{id}", id(pid), "", 200, func(b map[string]any) bool { return b["text"] == "Explain step by step." }},
		{"get someone else's", "alice", "GET /prompts/{id}", id(bobID), "", 404, nil},
		{"update", "alice", "PUT /prompts/{id}", id(pid), `{"name":"Tutor 2","text":"Be brief."}`, 200, func(b map[string]any) bool { return b["name"] == "Tutor 2" && b["text"] == "Be brief." }},
		{"update someone else's", "alice", "PUT /prompts/{id}", id(bobID), `{"name":"x","text":"y"}`, 404, nil},
		{"update without text", "alice", "PUT /prompts/{id}", id(pid), `{"name":"x"}`, 400, nil},
		{"create without name", "alice", "POST /prompts", nil, `{"text":"y"}`, 400, nil},
		{"create with empty text", "alice", "POST /prompts", nil, `{"name":"x","text":""}`, 400, nil},
		{"create with a long name", "alice", "POST /prompts", nil, `{"name":"` + strings.Repeat("n", 101) + `","text":"y"}`, 400, nil},
		{"create with a multi-line name", "alice", "POST /prompts", nil, `{"name":"a\nb","text":"y"}`, 400, nil},
		{"create with a long text", "alice", "POST /prompts", nil, `{"name":"x","text":"` + strings.Repeat("t", 20_001) + `"}`, 400, nil},
		{"create with wrong types", "alice", "POST /prompts", nil, `{"name":1,"text":true}`, 400, nil},
		{"create with trailing data", "alice", "POST /prompts", nil, `{"name":"x","text":"y"} {}`, 400, nil},
		{"create with no body", "alice", "POST /prompts", nil, ``, 400, nil},
		{"delete someone else's", "alice", "DELETE /prompts/{id}", id(bobID), "", 404, nil},
		{"delete own", "alice", "DELETE /prompts/{id}", id(pid), "", 204, nil},
		{"get deleted", "alice", "GET /prompts/{id}", id(pid), "", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.http("prompts", tt.user, "", "/prompts", tt.routeKey, tt.params, nil, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, body)
			}
			if tt.status >= 400 {
				if e, _ := body["error"].(map[string]any); e == nil || e["code"] == "" || e["message"] == "" {
					t.Errorf("error body %v", body)
				}
			}
			if tt.check != nil && !tt.check(body) {
				t.Errorf("body %v", body)
			}
		})
	}
	if status, _ := h.http("prompts", "bob", "", "/prompts", "GET /prompts/{id}", id(bobID), nil, ""); status != 200 {
		t.Errorf("bob's prompt was touched: %d", status)
	}
}

func TestUsageAPI(t *testing.T) {
	h := newHarness(t, harnessOpts{limit: 1_000_000})
	checkReply(t, h.send(h.connect("alice"), sendFrame("r1", "", "", "hi")), "r1")
	today := time.Now().UTC().Format(time.DateOnly)
	tests := []struct {
		name   string
		user   string
		query  map[string]string
		status int
		rows   int
	}{
		{"default range has today", "alice", nil, 200, 1},
		{"explicit range", "alice", map[string]string{"from": today, "to": today}, 200, 1},
		{"range before any use", "alice", map[string]string{"from": "2020-01-01", "to": "2020-01-31"}, 200, 0},
		{"another user sees nothing", "bob", nil, 200, 0},
		{"bad from", "alice", map[string]string{"from": "yesterday"}, 400, 0},
		{"bad to", "alice", map[string]string{"to": "2026-13-01"}, 400, 0},
		{"from after to", "alice", map[string]string{"from": "2026-02-01", "to": "2026-01-01"}, 400, 0},
		{"range too long", "alice", map[string]string{"from": "2020-01-01", "to": "2026-01-01"}, 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.http("usage", tt.user, "GET", "/usage", "GET /usage", nil, tt.query, "")
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, body)
			}
			if status != 200 {
				return
			}
			days := body["days"].([]any)
			if len(days) != tt.rows {
				t.Fatalf("%d rows, want %d: %v", len(days), tt.rows, days)
			}
			if tt.rows == 1 {
				row := days[0].(map[string]any)
				totals := body["totals"].(map[string]any)
				if row["day"] != today || row["inputTokens"].(float64) == 0 || row["outputTokens"].(float64) == 0 || row["costUsd"].(float64) <= 0 || totals["outputTokens"] != row["outputTokens"] {
					t.Errorf("row %v totals %v", row, totals)
				}
			}
			if body["dailyTokenLimit"].(float64) != 1_000_000 {
				t.Errorf("dailyTokenLimit %v", body["dailyTokenLimit"])
			}
		})
	}
}

func TestBase64Body(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ev := events.APIGatewayV2HTTPRequest{
		RouteKey: "POST /prompts", IsBase64Encoded: true,
		Body: base64.StdEncoding.EncodeToString([]byte(`{"name":"b64","text":"ok"}`)),
		RequestContext: events.APIGatewayV2HTTPRequestContext{Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": "alice"}},
		}},
	}
	resp, err := h.routes["prompts"].Handle(context.Background(), ev)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("%d %v %s", resp.StatusCode, err, resp.Body)
	}
	if resp.Headers["Content-Type"] != "application/json" {
		t.Errorf("content type %q", resp.Headers["Content-Type"])
	}
}
