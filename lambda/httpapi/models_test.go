package httpapi_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/httpapi"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/pricing"
)

func TestModelsListsTheAllowedModelsDefaultFirst(t *testing.T) {
	rt, err := config.ParseRuntime(func(k string) string {
		return map[string]string{
			config.AIProvider: config.ProviderAnthropicAPI, config.ModelID: "claude-sonnet-4-5-20250929",
			config.SecretName: "buddy-v1", config.MaxTokens: "4096",
			config.AllowedModels: "claude-haiku-4-5-20251001, claude-opus-4-5-20251101,claude-sonnet-4-5-20250929",
		}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	h := (&httpapi.Models{Allowed: rt.AllowedModels}).Routes()[manifest.RouteListModels]
	resp, apiErr := h(context.Background(), &httpapi.Request{User: "alice"})
	if apiErr != nil {
		t.Fatal(apiErr)
	}
	b, _ := json.Marshal(resp.Body)
	var body struct {
		Models []httpapi.ModelJSON `json:"models"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	price := func(id string) pricing.Price { p, _ := pricing.Lookup(id); return p }
	want := []httpapi.ModelJSON{
		{ID: "claude-sonnet-4-5-20250929", Default: true, Thinking: true, Price: price("claude-sonnet-4-5")},
		{ID: "claude-haiku-4-5-20251001", Thinking: true, Price: price("claude-haiku-4-5")},
		{ID: "claude-opus-4-5-20251101", Thinking: true, Effort: true, Price: price("claude-opus-4-5")},
	}
	if len(body.Models) != len(want) {
		t.Fatalf("listed %+v", body.Models)
	}
	for i := range want {
		if body.Models[i] != want[i] {
			t.Errorf("model %d = %+v, want %+v", i, body.Models[i], want[i])
		}
	}
	// The price object carries the five list prices by name.
	if !json.Valid(b) || string(mustJSON(t, want[2].Price)) != `{"inputPerMTok":5,"outputPerMTok":25,"cacheReadPerMTok":0.5,"cacheWrite5mPerMTok":6.25,"cacheWrite1hPerMTok":10}` {
		t.Errorf("Opus price %s", mustJSON(t, want[2].Price))
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
