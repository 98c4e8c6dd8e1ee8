package httpapi_test

import (
	"encoding/json"
	"testing"

	"github.com/p2/buddy/lambda/httpapi"
)

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
	a := newAPI(f, 0)
	f.Fuzz(func(t *testing.T, routeKey, id, query, body string) {
		ev := request("fuzzer", routeKey, map[string]string{"id": id},
			map[string]string{"cursor": query, "limit": query, "from": query, "to": query}, body)
		for _, rt := range []*httpapi.Router{a.conversations, a.prompts, a.usage} {
			resp, err := rt.Handle(t.Context(), ev)
			if err != nil || resp.StatusCode >= 500 {
				t.Fatalf("%s %q: %d %v %s", rt.Function, routeKey, resp.StatusCode, err, resp.Body)
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
