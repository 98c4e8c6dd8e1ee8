package httpapi_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/httpapi"
)

func TestPromptRoutesServeOnlyTheCallersOwnAndValidRequests(t *testing.T) {
	a := newAPI(t, 0)
	status, created := call(t, a.prompts, request("alice", "POST /prompts", nil, nil, `{"name":"Tutor","text":"Explain step by step."}`))
	if status != 201 || created["id"] == nil || created["id"] == "" || created["promptId"] != created["id"] || created["name"] != "Tutor" {
		t.Fatalf("create: %d %v", status, created)
	}
	pid := created["id"].(string)
	bobID := a.seedPrompt(t, "bob", "Bob", "Bob's.")
	id := func(s string) map[string]string { return map[string]string{"id": s} }

	// The rows run in order on the same data: the deletions come last.
	runRoutes(t, a.prompts, []routeCase{
		{"list own only", "alice", "GET /prompts", nil, nil, "", 200, "", func(b map[string]any) bool {
			l := list(b, "prompts")
			return len(l) == 1 && l[0]["id"] == pid
		}},
		{"get own", "alice", "GET /prompts/{id}", id(pid), nil, "", 200, "", func(b map[string]any) bool { return b["text"] == "Explain step by step." }},
		{"get someone else's", "alice", "GET /prompts/{id}", id(bobID), nil, "", 404, errcode.NotFound, nil},
		{"update", "alice", "PUT /prompts/{id}", id(pid), nil, `{"name":"Tutor 2","text":"Be brief."}`, 200, "", func(b map[string]any) bool { return b["name"] == "Tutor 2" && b["text"] == "Be brief." }},
		{"update someone else's", "alice", "PUT /prompts/{id}", id(bobID), nil, `{"name":"x","text":"y"}`, 404, errcode.NotFound, nil},
		{"update without text", "alice", "PUT /prompts/{id}", id(pid), nil, `{"name":"x"}`, 400, errcode.BadRequest, nil},
		{"create without name", "alice", "POST /prompts", nil, nil, `{"text":"y"}`, 400, errcode.BadRequest, nil},
		{"create with empty text", "alice", "POST /prompts", nil, nil, `{"name":"x","text":""}`, 400, errcode.BadRequest, nil},
		{"create with a long name", "alice", "POST /prompts", nil, nil, `{"name":"` + strings.Repeat("n", 101) + `","text":"y"}`, 400, errcode.BadRequest, nil},
		{"create with a multi-line name", "alice", "POST /prompts", nil, nil, `{"name":"a\nb","text":"y"}`, 400, errcode.BadRequest, nil},
		{"create with a long text", "alice", "POST /prompts", nil, nil, `{"name":"x","text":"` + strings.Repeat("t", 20_001) + `"}`, 400, errcode.BadRequest, nil},
		{"create with wrong types", "alice", "POST /prompts", nil, nil, `{"name":1,"text":true}`, 400, errcode.BadRequest, nil},
		{"create with trailing data", "alice", "POST /prompts", nil, nil, `{"name":"x","text":"y"} {}`, 400, errcode.BadRequest, nil},
		{"create with no body", "alice", "POST /prompts", nil, nil, ``, 400, errcode.BadRequest, nil},
		{"delete someone else's", "alice", "DELETE /prompts/{id}", id(bobID), nil, "", 404, errcode.NotFound, nil},
		{"delete own", "alice", "DELETE /prompts/{id}", id(pid), nil, "", 204, "", nil},
		{"get deleted", "alice", "GET /prompts/{id}", id(pid), nil, "", 404, errcode.NotFound, nil},
	})

	// Nothing alice did reached bob's prompt.
	status, body := call(t, a.prompts, request("bob", "GET /prompts/{id}", id(bobID), nil, ""))
	if status != 200 || body["name"] != "Bob" || body["text"] != "Bob's." {
		t.Errorf("bob's prompt was touched: %d %v", status, body)
	}
}

func TestPromptCreateStopsAtThePerUserCap(t *testing.T) {
	a := newAPI(t, 0)
	// Seeding through the store skips 199 round trips through the router;
	// the cap counts what is stored, however it got there.
	for i := range httpapi.MaxPromptsPerUser - 1 {
		a.seedPrompt(t, "alice", fmt.Sprintf("p%d", i), "text")
	}

	// In order: the last free place is taken, then the cap holds, for
	// alice only.
	tests := []struct {
		name   string
		user   string
		status int
		code   string
	}{
		{"the last one allowed", "alice", 201, ""},
		{"one over the cap", "alice", 400, errcode.BadRequest},
		{"another user is not capped", "bob", 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, a.prompts, request(tt.user, "POST /prompts", nil, nil, `{"name":"one more","text":"y"}`))
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, body)
			}
			if tt.code != "" {
				checkError(t, body, tt.code)
			}
		})
	}
	_, body := call(t, a.prompts, request("alice", "GET /prompts", nil, nil, ""))
	if n := len(list(body, "prompts")); n != httpapi.MaxPromptsPerUser {
		t.Errorf("alice has %d prompts, want %d", n, httpapi.MaxPromptsPerUser)
	}
}

func TestConcurrentPromptCreatesNeverPassThePerUserCap(t *testing.T) {
	a := newAPI(t, 0)
	tests := []struct {
		name        string
		user        string
		stored      int // prompts the user has before the burst
		burst       int // POST /prompts sent at once
		wantCreated int
	}{
		{"at the cap minus 5", "alice", httpapi.MaxPromptsPerUser - 5, 20, 5},
		{"with room for all", "bob", 0, 20, 20},
		{"at the cap", "carol", httpapi.MaxPromptsPerUser, 5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.stored {
				a.seedPrompt(t, tt.user, fmt.Sprintf("p%d", i), "text")
			}
			statuses := make(chan int, tt.burst)
			var wg sync.WaitGroup
			for range tt.burst {
				wg.Go(func() {
					resp, err := a.prompts.Handle(t.Context(), request(tt.user, "POST /prompts", nil, nil, `{"name":"burst","text":"y"}`))
					if err != nil {
						t.Error(err)
					}
					statuses <- resp.StatusCode
				})
			}
			wg.Wait()
			close(statuses)
			created, refused := 0, 0
			for status := range statuses {
				switch status {
				case 201:
					created++
				case 400:
					refused++
				default:
					t.Errorf("status %d, want 201 or 400", status)
				}
			}
			if created != tt.wantCreated || refused != tt.burst-tt.wantCreated {
				t.Errorf("%d created and %d refused, want %d and %d", created, refused, tt.wantCreated, tt.burst-tt.wantCreated)
			}
			_, body := call(t, a.prompts, request(tt.user, "GET /prompts", nil, nil, ""))
			if n := len(list(body, "prompts")); n != tt.stored+tt.wantCreated {
				t.Errorf("%s has %d prompts, want %d", tt.user, n, tt.stored+tt.wantCreated)
			}
		})
	}
}
