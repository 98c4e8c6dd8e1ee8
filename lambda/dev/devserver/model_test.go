package devserver

import (
	"context"
	"testing"
)

func TestModelChoiceFollowsTheAPIKey(t *testing.T) {
	tests := []struct {
		name        string
		key         string
		wantStandIn bool
	}{
		{"no key runs the offline stand-in", "", true},
		{"a key goes to Claude with that key", "sk-test-key", false},
	}
	for _, tt := range tests {
		m, err := startModel(Config{AnthropicAPIKey: tt.key})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if (m.standIn != nil) != tt.wantStandIn {
			t.Errorf("%s: stand-in running = %v", tt.name, m.standIn != nil)
		}
		if tt.wantStandIn && m.baseURL != m.standIn.URL {
			t.Errorf("%s: the client goes to %q, not the stand-in at %q", tt.name, m.baseURL, m.standIn.URL)
		}
		if !tt.wantStandIn && m.baseURL != "" {
			t.Errorf("%s: the client goes to %q, want the Anthropic API", tt.name, m.baseURL)
		}
		key, err := m.keys.Key(context.Background())
		if err != nil || (tt.key != "" && key != tt.key) {
			t.Errorf("%s: key source answered %q, %v", tt.name, key, err)
		}
		m.close()
	}
	if _, err := staticKey("").Key(context.Background()); err == nil {
		t.Error("an empty key source answered a key")
	}
}
