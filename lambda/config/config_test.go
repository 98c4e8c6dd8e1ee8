package config

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

func env(over map[string]string) func(string) string {
	m := maps.Clone(ModelDefaults)
	for k, v := range over {
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func TestParseModelDefaults(t *testing.T) {
	m, err := ParseModel(env(nil))
	if err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	if m.ModelID != "claude-opus-4-5-20251101" || m.Provider != ProviderAnthropicAPI || m.MaxTokens != 4096 ||
		m.Temperature == nil || *m.Temperature != 0.3 || m.TopP != nil || m.TopK != 40 || m.SecretName != "buddy-v1" ||
		!m.UseOpusModel || !m.UseAnthropicAPI {
		t.Errorf("defaults parsed wrong: %+v", m)
	}
}

func TestParseModelRejects(t *testing.T) {
	tests := []struct {
		name    string
		over    map[string]string
		wantKey string
	}{
		{"temperature above 1", map[string]string{Temperature: "1.5"}, Temperature},
		{"temperature below 0", map[string]string{Temperature: "-0.1"}, Temperature},
		{"temperature not a number", map[string]string{Temperature: "warm"}, Temperature},
		{"top_p with temperature is rejected", map[string]string{TopP: "0.9"}, TopP},
		{"retired opus 3 id", map[string]string{ModelID: "claude-3-opus-20240229"}, ModelID},
		{"empty model id", map[string]string{ModelID: ""}, ModelID},
		{"max tokens zero", map[string]string{MaxTokens: "0"}, MaxTokens},
		{"max tokens not a number", map[string]string{MaxTokens: "lots"}, MaxTokens},
		{"negative top_k", map[string]string{TopK: "-1"}, TopK},
		{"unknown provider", map[string]string{AIProvider: "openai"}, AIProvider},
		{"boolean typo", map[string]string{UseOpusModel: "yes please"}, UseOpusModel},
		{"anthropic api without secret name", map[string]string{SecretName: ""}, SecretName},
		{"bedrock while USE_ANTHROPIC_API=true", map[string]string{AIProvider: ProviderBedrock}, UseAnthropicAPI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseModel(env(tt.over))
			if err == nil {
				t.Fatal("accepted")
			}
			var ce *Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.wantKey+":") {
				t.Errorf("error %q does not name %s", err, tt.wantKey)
			}
		})
	}
}

func TestParseModelAccepts(t *testing.T) {
	tests := []struct {
		name  string
		over  map[string]string
		check func(Model) bool
	}{
		{"top_p alone", map[string]string{Temperature: "", TopP: "0.9"}, func(m Model) bool { return m.Temperature == nil && *m.TopP == 0.9 }},
		{"top_k 0 leaves it unset", map[string]string{TopK: "0"}, func(m Model) bool { return m.TopK == 0 }},
		{"top_k absent", map[string]string{TopK: ""}, func(m Model) bool { return m.TopK == 0 }},
		{"bedrock rollback", map[string]string{AIProvider: ProviderBedrock, UseAnthropicAPI: "false", SecretName: ""}, func(m Model) bool { return m.Provider == ProviderBedrock }},
		{"sonnet", map[string]string{ModelID: "claude-sonnet-4-5-20250929"}, func(m Model) bool { return m.ModelID == "claude-sonnet-4-5-20250929" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseModel(env(tt.over))
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if !tt.check(m) {
				t.Errorf("parsed wrong: %+v", m)
			}
		})
	}
}

func TestParseRuntime(t *testing.T) {
	base := map[string]string{JWTIssuer: "https://issuer.example/pool"}
	r, err := ParseRuntime(env(base))
	if err != nil {
		t.Fatal(err)
	}
	if r.JWKSURL != "https://issuer.example/pool/.well-known/jwks.json" {
		t.Errorf("JWKS URL not derived from the issuer: %q", r.JWKSURL)
	}
	if r.ConnectionTTL != DefaultConnectionTTL || r.SecretTTL != DefaultSecretTTL || r.DailyTokenLimit != 0 || r.ResumesPerMinute != DefaultResumesPerMinute {
		t.Errorf("runtime defaults wrong: %+v", r)
	}
	for name, over := range map[string]map[string]string{
		DailyTokenLimit:      {DailyTokenLimit: "-5"},
		SecretTTLSeconds:     {SecretTTLSeconds: "0"},
		ConnectionTTLSeconds: {ConnectionTTLSeconds: "soon"},
		AnthropicBaseURL:     {AnthropicBaseURL: "ftp://x"},
		ResumesPerMinute:     {ResumesPerMinute: "0"},
		MaxImageBytes:        {MaxImageBytes: "3932161"},
		MaxPDFBytes:          {MaxPDFBytes: "0"},
		MaxPDFPages:          {MaxPDFPages: "101"},
		MaxUploadsPerUserDay: {MaxUploadsPerUserDay: "many"},
		S3Endpoint:           {S3Endpoint: "ftp://x"},
		MaxInflightReplies:   {MaxInflightReplies: "101"},
	} {
		if _, err := ParseRuntime(env(over)); err == nil || !strings.Contains(err.Error(), name+":") {
			t.Errorf("%s: error %v does not name the variable", name, err)
		}
	}
	if r.MaxImageBytes != DefaultMaxImageBytes || r.MaxPDFBytes != DefaultMaxPDFBytes || r.MaxPDFPages != DefaultMaxPDFPages || r.MaxUploadsPerUserDay != DefaultMaxUploadsPerUserDay {
		t.Errorf("attachment limits' defaults wrong: %+v", r)
	}
	if r, err := ParseRuntime(env(map[string]string{ResumesPerMinute: "5"})); err != nil || r.ResumesPerMinute != 5 {
		t.Errorf("RESUMES_PER_MINUTE=5: %d, %v", r.ResumesPerMinute, err)
	}
	if err := Require(env(nil), ConnectionsTable); err == nil || !strings.Contains(err.Error(), ConnectionsTable) {
		t.Errorf("Require: %v", err)
	}
}
