package buddy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/p2/buddy/infra/buddy"
	"github.com/p2/buddy/lambda/config"
)

// TestBadContextFailsSynth: each bad value stops the synth (Build, i.e.
// what infra/main.go runs) with a message naming the key.
func TestBadContextFailsSynth(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  map[string]any
		key  string
		msg  string
	}{
		{"temperature above 1 is rejected", map[string]any{"TEMPERATURE": "1.5"}, "TEMPERATURE", "from 0 to 1"},
		{"temperature from cdk.json as a number is checked too", map[string]any{"TEMPERATURE": 1.5}, "TEMPERATURE", "from 0 to 1"},
		{"negative temperature is rejected", map[string]any{"TEMPERATURE": "-0.1"}, "TEMPERATURE", "from 0 to 1"},
		{"top_p with temperature is rejected", map[string]any{"TEMPERATURE": "0.5", "TOP_P": "0.9"}, "TOP_P", "TEMPERATURE"},
		{"top_p above 1 is rejected", map[string]any{"TOP_P": "1.2"}, "TOP_P", "from 0 to 1"},
		{"a retired model is rejected", map[string]any{"ANTHROPIC_MODEL_ID": "claude-3-opus-20240229"}, "ANTHROPIC_MODEL_ID", "retired"},
		{"zero max tokens is rejected", map[string]any{"MAX_TOKENS": "0"}, "MAX_TOKENS", "from 1 to"},
		{"non-numeric max tokens is rejected", map[string]any{"MAX_TOKENS": "lots"}, "MAX_TOKENS", "whole number"},
		{"top_k above 500 is rejected", map[string]any{"TOP_K": "501"}, "TOP_K", "0 to 500"},
		{"an unknown provider is rejected", map[string]any{"AI_PROVIDER": "foo"}, "AI_PROVIDER", "not a provider"},
		{"the Anthropic API with Bedrock is rejected", map[string]any{"AI_PROVIDER": "bedrock", "USE_ANTHROPIC_API": "true"}, "USE_ANTHROPIC_API", "bedrock"},
		{"a non-boolean opus flag is rejected", map[string]any{"USE_OPUS_MODEL": "maybe"}, "USE_OPUS_MODEL", "true or false"},
		{"a negative daily limit is rejected", map[string]any{"DAILY_TOKEN_LIMIT": "-1"}, "DAILY_TOKEN_LIMIT", ">= 0"},
		{"a zero connection TTL is rejected", map[string]any{"CONNECTION_TTL_SECONDS": "0"}, "CONNECTION_TTL_SECONDS", "seconds"},
		{"zero replies in flight is rejected", map[string]any{"MAX_INFLIGHT_REPLIES_PER_USER": "0"}, "MAX_INFLIGHT_REPLIES_PER_USER", "from 1 to 100"},
		{"over 100 replies in flight is rejected", map[string]any{"MAX_INFLIGHT_REPLIES_PER_USER": 101}, "MAX_INFLIGHT_REPLIES_PER_USER", "from 1 to 100"},
		{"a non-numeric in-flight limit is rejected", map[string]any{"MAX_INFLIGHT_REPLIES_PER_USER": "two"}, "MAX_INFLIGHT_REPLIES_PER_USER", "whole number"},
		{"a zero orphan grace is rejected", map[string]any{"ORPHAN_REPLY_GRACE_SECONDS": "0"}, "ORPHAN_REPLY_GRACE_SECONDS", "from 1 to 900"},
		{"an orphan grace beyond a Lambda run is rejected", map[string]any{"ORPHAN_REPLY_GRACE_SECONDS": "901"}, "ORPHAN_REPLY_GRACE_SECONDS", "from 1 to 900"},
		{"zero resumes a minute is rejected", map[string]any{"RESUMES_PER_MINUTE": "0"}, "RESUMES_PER_MINUTE", "from 1 to 1000"},
		{"over 1000 resumes a minute is rejected", map[string]any{"RESUMES_PER_MINUTE": 1001}, "RESUMES_PER_MINUTE", "from 1 to 1000"},
		{"a non-numeric resume limit is rejected", map[string]any{"RESUMES_PER_MINUTE": "many"}, "RESUMES_PER_MINUTE", "whole number"},
		{"a zero image limit is rejected", map[string]any{"MAX_IMAGE_BYTES": "0"}, "MAX_IMAGE_BYTES", "from 1 to 3932160"},
		{"an image limit above what the providers accept is rejected", map[string]any{"MAX_IMAGE_BYTES": 3932161}, "MAX_IMAGE_BYTES", "from 1 to 3932160"},
		{"a non-numeric image limit is rejected", map[string]any{"MAX_IMAGE_BYTES": "4MB"}, "MAX_IMAGE_BYTES", "whole number of bytes"},
		{"a zero PDF limit is rejected", map[string]any{"MAX_PDF_BYTES": "0"}, "MAX_PDF_BYTES", "from 1 to 33554432"},
		{"a PDF limit above a request's 32 MB is rejected", map[string]any{"MAX_PDF_BYTES": "33554433"}, "MAX_PDF_BYTES", "from 1 to 33554432"},
		{"a zero page limit is rejected", map[string]any{"MAX_PDF_PAGES": "0"}, "MAX_PDF_PAGES", "from 1 to 100"},
		{"a page limit above Claude's 100 is rejected", map[string]any{"MAX_PDF_PAGES": 101}, "MAX_PDF_PAGES", "from 1 to 100"},
		{"a zero daily upload count is rejected", map[string]any{"MAX_UPLOADS_PER_USER_DAY": "0"}, "MAX_UPLOADS_PER_USER_DAY", "from 1 to 100000"},
		{"a daily upload count above 100000 is rejected", map[string]any{"MAX_UPLOADS_PER_USER_DAY": "100001"}, "MAX_UPLOADS_PER_USER_DAY", "from 1 to 100000"},
		{"a non-numeric daily upload count is rejected", map[string]any{"MAX_UPLOADS_PER_USER_DAY": "lots"}, "MAX_UPLOADS_PER_USER_DAY", "whole number"},
		{"allowed models without the default are rejected", map[string]any{"ALLOWED_MODELS": "claude-haiku-4-5-20251001"}, "ALLOWED_MODELS", "must contain ANTHROPIC_MODEL_ID"},
		{"a retired allowed model is rejected", map[string]any{"ALLOWED_MODELS": "claude-opus-4-5-20251101,claude-3-opus-20240229"}, "ALLOWED_MODELS", "retired"},
		{"an unpriced allowed model is rejected", map[string]any{"ALLOWED_MODELS": "claude-opus-4-5-20251101,gpt-4"}, "ALLOWED_MODELS", "price"},
		{"an unknown prompt cache lifetime is rejected", map[string]any{"PROMPT_CACHE": "1d"}, "PROMPT_CACHE", "5m, 1h or off"},
		{"a negative reserved concurrency is rejected", map[string]any{"messageReservedConcurrency": "-1"}, "messageReservedConcurrency", ">= 0"},
		{"a fractional reserved concurrency is rejected", map[string]any{"messageReservedConcurrency": 2.5}, "messageReservedConcurrency", "whole number"},
		{"a non-numeric reserved concurrency is rejected", map[string]any{"messageReservedConcurrency": "lots"}, "messageReservedConcurrency", "whole number"},
		{"an unknown stage is rejected", map[string]any{"stage": "staging"}, "stage", "not a stage"},
		{"an unknown region is rejected", map[string]any{"region": "mars-1"}, "region", "not an AWS region"},
		{"a retention CloudWatch lacks is rejected", map[string]any{"logRetentionDays": "10"}, "logRetentionDays", "retention"},
		{"a non-boolean adoptSecret is rejected", map[string]any{"adoptSecret": "perhaps"}, "adoptSecret", "true or false"},
		{"an issuer without audience is rejected", map[string]any{"jwtIssuer": "https://login.example.com/"}, "jwtAudience", "required"},
		{"an audience without issuer is rejected", map[string]any{"jwtAudience": "web"}, "jwtIssuer", "required"},
		{"a plain-http issuer is rejected", map[string]any{"jwtIssuer": "http://login.example.com/", "jwtAudience": "web"}, "jwtIssuer", "https"},
		{"a zero throttle is rejected", map[string]any{"throttleRateLimit": "0"}, "throttleRateLimit", "from 1"},
		{"a burst below the rate is rejected", map[string]any{"throttleRateLimit": "50", "throttleBurstLimit": "10"}, "throttleBurstLimit", "burst"},
		{"a bad CORS origin is rejected", map[string]any{"corsAllowOrigins": "ftp://files.example.com"}, "corsAllowOrigins", "origin"},
		{"prod without CORS origins is rejected", map[string]any{"stage": "prod"}, "corsAllowOrigins", "prod needs the web app's origins"},
		{"prod with every origin is rejected", map[string]any{"stage": "prod", "corsAllowOrigins": "*"}, "corsAllowOrigins", "prod needs the web app's origins, not *"},
		{"prod with * among its origins is rejected", map[string]any{"stage": "prod", "corsAllowOrigins": "https://chat.example.com, *"}, "corsAllowOrigins", "not *"},
		{"a bad WebSocket stage name is rejected", map[string]any{"webSocketStageName": "my stage"}, "webSocketStageName", "letters"},
		{"a bad alarm email is rejected", map[string]any{"alarmEmail": "ops"}, "alarmEmail", "email"},
		{"a bad alarm threshold is rejected", map[string]any{"modelErrorRateAlarmPercent": "0"}, "modelErrorRateAlarmPercent", "percentage"},
		{"a misspelt key is rejected", map[string]any{"TEMPERATUR": "0.5"}, "TEMPERATUR", "not a context key"},
		{"a misspelt stack key is rejected", map[string]any{"adoptSecrets": "true"}, "adoptSecrets", "not a context key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := buddy.Build(newApp(t, tc.ctx), failingBundler{t})
			if err == nil {
				t.Fatalf("synth succeeded with %v", tc.ctx)
			}
			var ce *config.Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.key+": ") || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not name %s with %q", err, tc.key, tc.msg)
			}
		})
	}
}

// failingBundler fails the test if a bad context got as far as bundling.
type failingBundler struct{ t *testing.T }

func (f failingBundler) Bundle() (map[string]string, error) {
	f.t.Error("bundling started although the context is bad")
	return nil, errors.New("not reached")
}

// TestContextDefaults: what the functions get without any context, and the
// two derived rules (TOP_P drops the TEMPERATURE default, USE_ANTHROPIC_API
// follows AI_PROVIDER).
func TestContextDefaults(t *testing.T) {
	parse := func(ctx map[string]string) buddy.Settings {
		t.Helper()
		s, err := buddy.ParseSettings(func(k string) (string, bool) { v, ok := ctx[k]; return v, ok })
		if err != nil {
			t.Fatalf("%v: %v", ctx, err)
		}
		return s
	}
	want := map[string]string{}
	for k, v := range runtimeEnv {
		want[k] = v
	}
	for k, v := range designEnv {
		want[k] = v
	}
	s := parse(nil)
	equal(t, "default environment", s.Env, want)
	equal(t, "default stage", []any{s.Stage, s.Region, s.LogRetentionDays, s.Prod, s.SecretName, s.WebSocketStageName},
		[]any{"dev", "us-east-1", 30, false, "buddy-v1", "dev"})
	if p := parse(map[string]string{"stage": "prod", "corsAllowOrigins": "https://chat.example.com"}); !p.Prod || p.LogRetentionDays != 365 {
		t.Errorf("prod settings: %+v", p.StageSettings)
	}
	// dev answers the chat page of make dev; origins given are normalized.
	equal(t, "dev CORS origins", s.CorsAllowOrigins, []string{"http://127.0.0.1:8787", "http://localhost:8787"})
	equal(t, "given CORS origins", parse(map[string]string{"stage": "prod", "corsAllowOrigins": " https://chat.example.com/ ,http://localhost:3000"}).CorsAllowOrigins,
		[]string{"https://chat.example.com", "http://localhost:3000"})
	equal(t, "dev may allow every origin", parse(map[string]string{"corsAllowOrigins": "*"}).CorsAllowOrigins, []string{"*"})

	topP := parse(map[string]string{"TOP_P": "0.8"}).Env
	if _, ok := topP["TEMPERATURE"]; ok || topP["TOP_P"] != "0.8" {
		t.Errorf("TOP_P alone: %v", topP)
	}
	bedrock := parse(map[string]string{"AI_PROVIDER": "bedrock"}).Env
	if bedrock["USE_ANTHROPIC_API"] != "false" {
		t.Errorf("bedrock: USE_ANTHROPIC_API=%s, want false", bedrock["USE_ANTHROPIC_API"])
	}
	if got := parse(map[string]string{"TEMPERATURE": "0.5"}).Env["TEMPERATURE"]; got != "0.5" {
		t.Errorf("TEMPERATURE=0.5 gives %s", got)
	}
	if got := parse(map[string]string{"logRetentionDays": "731"}).LogRetentionDays; got != 731 {
		t.Errorf("logRetentionDays=731 gives %d", got)
	}
	for ctx, want := range map[string]int{"": 0, "0": 0, "150": 150} {
		c := map[string]string{}
		if ctx != "" {
			c["messageReservedConcurrency"] = ctx
		}
		if got := parse(c).MessageReservedConcurrency; got != want {
			t.Errorf("messageReservedConcurrency=%q gives %d, want %d", ctx, got, want)
		}
	}
	limits := parse(map[string]string{"MAX_INFLIGHT_REPLIES_PER_USER": "5", "ORPHAN_REPLY_GRACE_SECONDS": "900", "RESUMES_PER_MINUTE": "1000"}).Env
	if limits["MAX_INFLIGHT_REPLIES_PER_USER"] != "5" || limits["ORPHAN_REPLY_GRACE_SECONDS"] != "900" || limits["RESUMES_PER_MINUTE"] != "1000" {
		t.Errorf("reply limits: %v", limits)
	}
	// The upload limits, each at the most the runtime accepts.
	uploads := map[string]string{"MAX_IMAGE_BYTES": "3932160", "MAX_PDF_BYTES": "33554432", "MAX_PDF_PAGES": "100", "MAX_UPLOADS_PER_USER_DAY": "100000"}
	got := parse(uploads).Env
	for k, v := range uploads {
		if got[k] != v {
			t.Errorf("%s=%s gives %q", k, v, got[k])
		}
	}
	// cdk.json values arrive as JSON numbers and booleans.
	get := buddy.ContextGetter(func(k string) any {
		return map[string]any{"TEMPERATURE": 0.25, "adoptSecret": true}[k]
	})
	s, err := buddy.ParseSettings(get)
	if err != nil || s.Env["TEMPERATURE"] != "0.25" || !s.AdoptSecret {
		t.Errorf("JSON-typed context: %v %v %v", err, s.Env["TEMPERATURE"], s.AdoptSecret)
	}
}
