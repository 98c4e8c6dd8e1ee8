package devserver

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestDataAndSigningKeyPersistAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	// The store is the tests' DynamoDB Local, which outlives both servers
	// (dynamodblocal's tests restart one on its data directory, as make dev
	// does): this checks that a restart keeps the tables, their data and
	// the signing key.
	cfg := withDB(t, Config{StateDir: dir})
	start := func() *Server {
		srv, err := Start(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	srv := start()
	kid := srv.Issuer().KeyID()
	hana := newUser(t, srv, "hana")
	if st := hana.api(ctx, http.MethodPost, "/prompts", map[string]string{"name": "Keep", "text": "me"}, nil); st != http.StatusCreated {
		t.Fatalf("POST /prompts: %d", st)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}

	srv = start()
	defer srv.Close()
	if got := srv.Issuer().KeyID(); got != kid {
		t.Errorf("signing key changed across a restart: %s, then %s", kid, got)
	}
	// The ports (hence the issuer) are new; the data is not.
	tok, err := srv.Token(hana.sub)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Prompts []apiPrompt `json:"prompts"`
	}
	if st := callAPI(ctx, t, srv, "Bearer "+tok, http.MethodGet, "/prompts", nil, &list); st != 200 || len(list.Prompts) != 1 || list.Prompts[0].Name != "Keep" {
		t.Errorf("after a restart GET /prompts answered %d %+v", st, list)
	}
}

func TestPageTokenEndpointAndCORS(t *testing.T) {
	srv := sharedServer(t)
	ctx := testCtx(t)
	get := func(method, path string, hdr map[string]string, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, srv.HTTPURL+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	tok, _ := srv.Token("page-check")
	ownLocalhost := strings.Replace(srv.HTTPURL, "127.0.0.1", "localhost", 1)
	tests := []struct {
		name     string
		method   string
		path     string
		header   map[string]string
		body     string
		status   int
		contains string
		header2  [2]string // a response header that must be present
	}{
		{"the page is served at /", "GET", "/", nil, "", 200, `<script src="app.js"`, [2]string{"Content-Type", "text/html; charset=utf-8"}},
		{"the script is served", "GET", "/app.js", nil, "", 200, "sendMessage", [2]string{}},
		{"the style sheet is served", "GET", "/style.css", nil, "", 200, ":root", [2]string{}},
		{"the page learns the URLs", "GET", "/dev/config", nil, "", 200, srv.WebSocketURL, [2]string{}},
		{"the JWKS is published where the issuer implies", "GET", "/.well-known/jwks.json", nil, "", 200, `"kid":"` + srv.Issuer().KeyID() + `"`, [2]string{}},
		{"a token needs a user name", "POST", "/dev/token", nil, `{}`, 400, "bad_request", [2]string{}},
		{"a user name with a slash is refused", "POST", "/dev/token", nil, `{"sub":"a/b"}`, 400, "bad_request", [2]string{}},
		{"a token body must be JSON", "POST", "/dev/token", nil, `sub=alice`, 400, "bad_request", [2]string{}},
		{"an unknown path is API Gateway's 404", "GET", "/nope", map[string]string{"Authorization": "Bearer " + tok}, "", 404, `{"message":"Not Found"}`, [2]string{}},
		{"a route without a token is 401 even with a body", "POST", "/prompts", nil, `{"name":"x","text":"y"}`, 401, `{"message":"Unauthorized"}`, [2]string{}},
		// Only the server's own origins get CORS answers (a page opened as
		// localhost calling 127.0.0.1); foreign ones are refused, in
		// loopback_test.go.
		{"a preflight from the server's own page is answered by the gateway", "OPTIONS", "/prompts", map[string]string{"Origin": ownLocalhost, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}, "", 204, "", [2]string{"Access-Control-Allow-Headers", corsAllowHeaders}},
		{"API answers name the server's own origin", "GET", "/usage", map[string]string{"Origin": ownLocalhost, "Authorization": "Bearer " + tok}, "", 200, `"totals"`, [2]string{"Access-Control-Allow-Origin", ownLocalhost}},
		{"errors name it too", "GET", "/usage", map[string]string{"Origin": ownLocalhost}, "", 401, "Unauthorized", [2]string{"Access-Control-Allow-Origin", ownLocalhost}},
		{"a preflight of the token endpoint is answered", "OPTIONS", "/dev/token", map[string]string{"Origin": ownLocalhost, "Access-Control-Request-Method": "POST"}, "", 204, "", [2]string{"Access-Control-Allow-Origin", ownLocalhost}},
		{"a token without the Bearer prefix is accepted like API Gateway does", "GET", "/prompts", map[string]string{"Authorization": tok}, "", 200, `"prompts"`, [2]string{}},
	}
	for _, tt := range tests {
		resp, body := get(tt.method, tt.path, tt.header, tt.body)
		if resp.StatusCode != tt.status || !strings.Contains(body, tt.contains) {
			t.Errorf("%s: %s %s answered %d %.200q", tt.name, tt.method, tt.path, resp.StatusCode, body)
		}
		if tt.header2[0] != "" && resp.Header.Get(tt.header2[0]) != tt.header2[1] {
			t.Errorf("%s: header %s = %q, want %q", tt.name, tt.header2[0], resp.Header.Get(tt.header2[0]), tt.header2[1])
		}
	}
}

func TestStartNeedsAStateDirectory(t *testing.T) {
	ctx := t.Context()
	if _, err := Start(ctx, Config{}); err == nil {
		t.Error("Start without a state directory succeeded")
	}
}

func TestInvalidModelSettingsAreRefusedAtStart(t *testing.T) {
	ctx := testCtx(t)
	env := map[string]string{"TEMPERATURE": "0.5", "TOP_P": "0.9"}
	_, err := Start(ctx, withDB(t, Config{StateDir: t.TempDir(), Getenv: func(k string) string { return env[k] }}))
	if err == nil || !strings.Contains(err.Error(), "TOP_P") {
		t.Errorf("TEMPERATURE with TOP_P: Start answered %v, want an error naming TOP_P", err)
	}
}

// The runtime's limits and settings are taken from the environment and
// checked by the same rules as in AWS: an out-of-range one stops the start.
func TestLimitsAreTakenAndCheckedAtStart(t *testing.T) {
	ctx := testCtx(t)
	for _, key := range []string{"MAX_INFLIGHT_REPLIES_PER_USER", "RESUMES_PER_MINUTE", "MAX_PDF_PAGES", "MAX_IMAGE_BYTES", "MAX_UPLOADS_PER_USER_DAY", "PROMPT_CACHE", "ALLOWED_MODELS"} {
		env := map[string]string{key: "100000000"}
		_, err := Start(ctx, withDB(t, Config{StateDir: t.TempDir(), Getenv: func(k string) string { return env[k] }}))
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=100000: Start answered %v, want an error naming it", key, err)
		}
	}
}
