package wshandler_test

import (
	"context"
	"testing"

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
