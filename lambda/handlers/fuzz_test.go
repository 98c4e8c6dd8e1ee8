package handlers_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/wsapi"
)

var knownCodes = map[string]bool{
	errcode.BadRequest: true, errcode.Unauthorized: true, errcode.Forbidden: true, errcode.NotFound: true,
	errcode.TooLarge: true, errcode.QuotaExceeded: true, errcode.RateLimited: true, errcode.UpstreamError: true,
	errcode.Internal: true,
}

// FuzzRoute feeds arbitrary frames to the message route: it must never
// panic, always answer 200, and every frame it sends back is a known type
// with a known error code.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{
		`{"action":"ping"}`,
		`{"action":"sendMessage","requestId":"r1","text":"hello"}`,
		`{"action":"sendMessage","requestId":"r1","text":"hello","conversationId":"01JD0000000000000000000000"}`,
		`{"action":"sendMessage","requestId":"r1","text":"hello","promptId":"x"}`,
		`{"action":"sendMessage","requestId":"r1","text":"[[fault=500]]"}`,
		`{"action":"nope"}`, `{`, `[]`, `null`, `"x"`, ``, "\xff\xfe",
		`{"action":"sendMessage","requestId":"r1","text":"a","text":"b"}`,
	} {
		f.Add(s)
	}
	h := newHarness(f, harnessOpts{})
	conn := h.connect("fuzzer")
	f.Fuzz(func(t *testing.T, body string) {
		resp, err := h.ws.Route(context.Background(), wsEvent(conn, "$default", body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("answered %d %v", resp.StatusCode, err)
		}
		for _, fr := range h.posts.take(conn) {
			switch fr.Type {
			case wsapi.TypeStart, wsapi.TypeDelta, wsapi.TypeEnd, wsapi.TypePong:
			case wsapi.TypeError:
				if !knownCodes[fr.Code] || fr.Message == "" {
					t.Fatalf("error frame with unknown code or no message: %+v", fr)
				}
			default:
				t.Fatalf("unknown frame type %+v", fr)
			}
		}
	})
}

// FuzzHTTP sends arbitrary route keys, ids, queries and bodies to the three
// HTTP functions: never a panic, never a 5xx, always a JSON error body on
// failure.
func FuzzHTTP(f *testing.F) {
	f.Add("POST /prompts", "", "", `{"name":"a","text":"b"}`)
	f.Add("PUT /prompts/{id}", "01JD0000000000000000000000", "", `{"name":"a","text":"b"}`)
	f.Add("GET /conversations", "", "abc", ``)
	f.Add("PATCH /conversations/{id}", "x", "", `{"title":null}`)
	f.Add("GET /usage", "", "2026-01-01", ``)
	f.Add("DELETE /prompts/{id}", "../..", "", `{}`)
	h := newHarness(f, harnessOpts{})
	f.Fuzz(func(t *testing.T, routeKey, id, query, body string) {
		for _, fn := range []string{"conversations", "prompts", "usage"} {
			ev := events.APIGatewayV2HTTPRequest{
				RouteKey: routeKey, Body: body,
				PathParameters:        map[string]string{"id": id},
				QueryStringParameters: map[string]string{"cursor": query, "limit": query, "from": query, "to": query},
				RequestContext: events.APIGatewayV2HTTPRequestContext{Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
					JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": "fuzzer"}},
				}},
			}
			resp, err := h.routes[fn].Handle(context.Background(), ev)
			if err != nil || resp.StatusCode >= 500 {
				t.Fatalf("%s %q: %d %v %s", fn, routeKey, resp.StatusCode, err, resp.Body)
			}
			if resp.StatusCode >= 400 {
				var e struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				if json.Unmarshal([]byte(resp.Body), &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
					t.Fatalf("error body %q", resp.Body)
				}
			}
		}
	})
}
