package devserver

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// TestOnlyTheServersOwnHostAndPagesAreServed sends requests to a real
// server on 127.0.0.1 as a browser would from a foreign page (a foreign
// Origin) or after DNS rebinding (a foreign Host), and as the chat page,
// curl and the SDKs do.
func TestOnlyTheServersOwnHostAndPagesAreServed(t *testing.T) {
	srv := sharedServer(t)
	ctx := testCtx(t)
	httpHost := strings.TrimPrefix(srv.HTTPURL, "http://")
	wsURL, _ := url.Parse(srv.WebSocketURL)
	wsHost := wsURL.Host
	_, httpPort, _ := strings.Cut(httpHost, ":")
	_, wsPort, _ := strings.Cut(wsHost, ":")
	page := srv.HTTPURL // the chat page's origin
	localPage := "http://localhost:" + httpPort
	wsOrigin := "http://" + wsHost
	tok, err := srv.Token("loopback-check")
	if err != nil {
		t.Fatal(err)
	}
	const (
		token  = "POST /dev/token"
		usage  = "GET /usage"
		config = "GET /dev/config"
		socket = "WebSocket upgrade"
	)
	tests := []struct {
		name   string
		target string
		host   string // "" is the listener's own address
		origin []string
		status int
	}{
		{"curl mints a token (no Origin)", token, "", nil, 200},
		{"the chat page mints a token", token, "", []string{page}, 200},
		{"the page opened as localhost mints a token", token, "localhost:" + httpPort, []string{localPage}, 200},
		{"a foreign page cannot mint a token", token, "", []string{"https://evil.example"}, 403},
		{"a foreign page on another loopback port cannot mint a token", token, "", []string{"http://127.0.0.1:1"}, 403},
		{"a sandboxed or file page (Origin null) cannot mint a token", token, "", []string{"null"}, 403},
		{"two Origins are refused", token, "", []string{page, "https://evil.example"}, 403},
		{"a rebound host name cannot mint a token", token, "evil.example:" + httpPort, nil, 403},
		{"a rebound host name cannot mint a token even with its own Origin", token, "evil.example:" + httpPort, []string{"http://evil.example:" + httpPort}, 403},
		{"the HTTP listener does not answer to the WebSocket port", token, wsHost, nil, 403},
		{"the API answers a Go client", usage, "", nil, 200},
		{"the API answers the chat page", usage, "", []string{page}, 200},
		{"the API refuses a foreign page", usage, "", []string{"https://evil.example"}, 403},
		{"the API refuses a rebound host name", usage, "evil.example:" + httpPort, nil, 403},
		{"the page config answers localhost", config, "localhost:" + httpPort, nil, 200},
		{"the WebSocket API answers a Go client", socket, "", nil, 101},
		{"the WebSocket API answers the chat page", socket, "", []string{page}, 101},
		{"the WebSocket API answers the page opened as localhost", socket, "localhost:" + wsPort, []string{localPage}, 101},
		{"the WebSocket API answers its own origin", socket, "", []string{wsOrigin}, 101},
		{"the WebSocket API refuses a foreign page", socket, "", []string{"https://evil.example"}, 403},
		{"the WebSocket API refuses a rebound host name", socket, "evil.example:" + wsPort, nil, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.target == socket {
				hdr := http.Header{}
				for _, o := range tt.origin {
					hdr.Add("Origin", o)
				}
				c, resp, err := websocket.Dial(ctx, srv.WebSocketURL+"?token="+url.QueryEscape(tok), &websocket.DialOptions{Host: tt.host, HTTPHeader: hdr})
				if err == nil {
					defer c.CloseNow()
				}
				if resp == nil {
					t.Fatalf("no answer: %v", err)
				}
				if resp.StatusCode != tt.status {
					t.Errorf("the upgrade answered %d (%v), want %d", resp.StatusCode, err, tt.status)
				}
				checkAllowOrigin(t, resp, tt.origin)
				return
			}
			method, path, _ := strings.Cut(tt.target, " ")
			req, err := http.NewRequestWithContext(ctx, method, srv.HTTPURL+path, strings.NewReader(`{"sub":"loopback-check"}`))
			if err != nil {
				t.Fatal(err)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			for _, o := range tt.origin {
				req.Header.Add("Origin", o)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Errorf("%s answered %d %.200s, want %d", tt.target, resp.StatusCode, body, tt.status)
			}
			if resp.StatusCode == http.StatusForbidden && strings.Contains(string(body), `"token"`) {
				t.Errorf("a refusal carries a token: %s", body)
			}
			checkAllowOrigin(t, resp, tt.origin)
			if tt.target == config && tt.status == 200 {
				// A page opened as localhost keeps its calls on its origin.
				for _, want := range []string{`"httpUrl":"http://localhost:` + httpPort + `"`, `"webSocketUrl":"ws://localhost:` + wsPort + `/`} {
					if !strings.Contains(string(body), want) {
						t.Errorf("the config %s lacks %s", body, want)
					}
				}
			}
		})
	}
}

// checkAllowOrigin fails when an answer names an origin it should not:
// "*" never, otherwise only the request's own (allowed) origin.
func checkAllowOrigin(t *testing.T, resp *http.Response, origins []string) {
	t.Helper()
	got := resp.Header.Values("Access-Control-Allow-Origin")
	switch {
	case len(got) == 0:
	case len(got) == 1 && len(origins) == 1 && got[0] == origins[0] && resp.StatusCode != http.StatusForbidden:
	default:
		t.Errorf("Access-Control-Allow-Origin %q for Origin %q and status %d", got, origins, resp.StatusCode)
	}
}

// TestEveryListenerRefusesForeignRequests covers the listeners no page
// ever calls: the Lambda API (which would run a reply job unauthenticated)
// and the model stand-in refuse any Origin; the @connections endpoint
// refuses a foreign Host, and answers as before otherwise.
func TestEveryListenerRefusesForeignRequests(t *testing.T) {
	srv := sharedServer(t)
	ctx := testCtx(t)
	// Any SigV4 signature passes fakeconnections; a missing one is its own 403.
	signed := "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=00"
	tests := []struct {
		name, url, host, origin string
		status                  int
	}{
		{"the Lambda API refuses a page", srv.LambdaURL + "/2015-03-31/functions/x/invocations", "", srv.HTTPURL, 403},
		{"the Lambda API refuses a rebound host name", srv.LambdaURL + "/2015-03-31/functions/x/invocations", "evil.example", "", 403},
		{"the model stand-in refuses a page", srv.StandIn.URL + "/v1/messages", "", srv.HTTPURL, 403},
		{"@connections answers the SDK", srv.ConnectionsURL + "/@connections/x", "", "", 410},
		{"@connections refuses a rebound host name", srv.ConnectionsURL + "/@connections/x", "evil.example", "", 403},
	}
	for _, tt := range tests {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, tt.url, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if tt.host != "" {
			req.Host = tt.host
		}
		if tt.origin != "" {
			req.Header.Set("Origin", tt.origin)
		}
		req.Header.Set("Authorization", signed)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: answered %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
		checkAllowOrigin(t, resp, nil)
	}
}
