package httpapi_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/httpapi"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/store"
)

// Prompts at the per-user limit and the text limit would make a list of
// 16 MB and more; the list is cut under 4 MB, and under Lambda's limit on
// what the function returns (the body escaped again inside API Gateway's
// response envelope), and continued by cursor, every prompt exactly once,
// in order.
func TestPromptListStaysUnderFourMegabytes(t *testing.T) {
	const limit4MB = 4 << 20
	tests := []struct {
		name    string
		prompts int
		unit    string // one character of the text, repeated to the limit
		pages   int    // 0: more than one
	}{
		{"a few prompts fit one page", 3, "x", 1},
		{"70 prompts of 20,000 four-byte characters take two pages", 70, "😀", 2},
		{"100 prompts of 20,000 quotes, 4 MB of body but 8 MB of envelope, take several pages", 100, `"`, 0},
		{"100 prompts of 20,000 backslashes take several pages", 100, `\`, 0},
		{"70 prompts of 20,000 '<', six bytes each in the envelope, take several pages", 70, "<", 0},
		{"70 prompts of 20,000 control characters take several pages", 70, "\x1f", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAPI(t, 0)
			now := time.Now().UTC()
			var want []string
			for i := range tt.prompts {
				p := store.Prompt{UserID: "alice", PromptID: ids.New(), Name: fmt.Sprint("p", i),
					Text: strings.Repeat(tt.unit, httpapi.MaxPromptTextRunes), CreatedAt: now, UpdatedAt: now}
				if err := a.store.CreatePrompt(t.Context(), p, 0); err != nil {
					t.Fatal(err)
				}
				want = append(want, p.PromptID)
			}
			var got []string
			query := map[string]string{}
			pages := 0
			for {
				resp, err := a.prompts.Handle(t.Context(), request("alice", "GET /prompts", nil, query, ""))
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("page %d: %d %v", pages+1, resp.StatusCode, err)
				}
				pages++
				if len(resp.Body) > limit4MB {
					t.Errorf("page %d is %d bytes, over 4 MB", pages, len(resp.Body))
				}
				if n := envelopeSize(t, resp); n > lambdaResponseLimit {
					t.Errorf("page %d returns %d bytes, over Lambda's %d", pages, n, lambdaResponseLimit)
				}
				var body struct {
					Prompts    []httpapi.PromptJSON `json:"prompts"`
					NextCursor string               `json:"nextCursor"`
				}
				if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
					t.Fatal(err)
				}
				for _, p := range body.Prompts {
					got = append(got, p.ID)
				}
				if body.NextCursor == "" {
					break
				}
				if pages > tt.prompts {
					t.Fatal("cursors never end")
				}
				query["cursor"] = body.NextCursor
			}
			if (tt.pages == 0 && pages < 2) || (tt.pages > 0 && pages != tt.pages) || strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%d pages listed %d prompts; want %d pages (0: more than one), the %d in order", pages, len(got), tt.pages, len(want))
			}
		})
	}
	a := newAPI(t, 0)
	if resp, _ := a.prompts.Handle(t.Context(), request("alice", "GET /prompts", nil, map[string]string{"cursor": "bm9wZQ"}, "")); resp.StatusCode != 400 {
		t.Errorf("an unknown cursor answered %d, want 400", resp.StatusCode)
	}
}
