package devserver

import (
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/manifest"
)

func TestHTTPRoutesMatchLikeAPIGateway(t *testing.T) {
	var routes []httpRoute
	for _, r := range manifest.HTTPRoutes {
		rt, err := newHTTPRoute(r.RouteKey, &function{name: r.Function.Name})
		if err != nil {
			t.Fatal(err)
		}
		routes = append(routes, rt)
	}
	match := func(method, path string) (string, map[string]string) {
		for i := range routes {
			if p, ok := routes[i].match(method, path); ok {
				return routes[i].key, p
			}
		}
		return "", nil
	}
	tests := []struct {
		name, method, path string
		wantKey            string
		wantID             string
	}{
		{"collection", "GET", "/conversations", "GET /conversations", ""},
		{"item with its id", "GET", "/conversations/01ABC", "GET /conversations/{id}", "01ABC"},
		{"the method is part of the route", "PATCH", "/conversations/x", "PATCH /conversations/{id}", "x"},
		{"a percent-encoded id is decoded", "DELETE", "/prompts/a%20b", "DELETE /prompts/{id}", "a b"},
		{"a method without a route does not match", "POST", "/conversations", "", ""},
		{"a trailing slash is another path", "GET", "/conversations/", "", ""},
		{"a deeper path does not match", "GET", "/prompts/x/y", "", ""},
		{"an unknown path does not match", "GET", "/nothing", "", ""},
		{"usage takes no id", "GET", "/usage", "GET /usage", ""},
	}
	for _, tt := range tests {
		key, params := match(tt.method, tt.path)
		if key != tt.wantKey || params["id"] != tt.wantID {
			t.Errorf("%s: %s %s matched %q %v, want %q id %q", tt.name, tt.method, tt.path, key, params, tt.wantKey, tt.wantID)
		}
	}
}

func TestHTTPEventIsPayloadFormat2(t *testing.T) {
	g := &httpGateway{apiID: "abc123defg"}
	rt, _ := newHTTPRoute("PUT /prompts/{id}", &function{})
	r := httptest.NewRequest("PUT", "http://127.0.0.1:8787/prompts/p1?x=1&x=2&y=", strings.NewReader(`{"name":"n"}`))
	r.Header.Add("X-Multi", "a")
	r.Header.Add("X-Multi", "b")
	r.Header.Set("Cookie", "c1=v1; c2=v2")
	r.Header.Set("User-Agent", "tester")
	now := time.Date(2026, 1, 20, 11, 55, 0, 0, time.UTC)
	ev := g.event(r, &rt, map[string]string{"id": "p1"}, map[string]string{"sub": "alice"}, []byte(`{"name":"n"}`), now)
	checks := []struct {
		name      string
		got, want any
	}{
		{"version", ev.Version, "2.0"},
		{"route key", ev.RouteKey, "PUT /prompts/{id}"},
		{"route key in the context", ev.RequestContext.RouteKey, "PUT /prompts/{id}"},
		{"raw path", ev.RawPath, "/prompts/p1"},
		{"raw query string", ev.RawQueryString, "x=1&x=2&y="},
		{"repeated query values are comma-joined", ev.QueryStringParameters["x"], "1,2"},
		{"an empty query value is kept", ev.QueryStringParameters["y"], ""},
		{"path parameter", ev.PathParameters["id"], "p1"},
		{"headers are lower case and comma-joined", ev.Headers["x-multi"], "a,b"},
		{"host header", ev.Headers["host"], "127.0.0.1:8787"},
		{"cookies are apart", fmt.Sprint(ev.Cookies), "[c1=v1 c2=v2]"},
		{"no cookie header", ev.Headers["cookie"], ""},
		{"body as text", ev.Body, `{"name":"n"}`},
		{"stage", ev.RequestContext.Stage, "$default"},
		{"method", ev.RequestContext.HTTP.Method, "PUT"},
		{"user agent", ev.RequestContext.HTTP.UserAgent, "tester"},
		{"request time", ev.RequestContext.Time, "20/Jan/2026:11:55:00 +0000"},
		{"request time epoch", ev.RequestContext.TimeEpoch, now.UnixMilli()},
		{"claims from the authorizer", ev.RequestContext.Authorizer.JWT.Claims["sub"], "alice"},
		{"api id", ev.RequestContext.APIID, "abc123defg"},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	bin := g.event(r, &rt, nil, nil, []byte{0xff, 0xfe}, now)
	if !bin.IsBase64Encoded || bin.Body != base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe}) {
		t.Errorf("a binary body: %q base64=%v", bin.Body, bin.IsBase64Encoded)
	}
}

func TestClaimsAreStringsAsAPIGatewayPassesThem(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"alice","exp":1795353614,"admin":true,"groups":["a","b"],"aud":["buddy-dev"],"n":null}`))
	claims, err := tokenClaims("h." + payload + ".s")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, claim, want string }{
		{"a string stays", "sub", "alice"},
		{"a number keeps its digits", "exp", "1795353614"},
		{"a boolean is spelt out", "admin", "true"},
		{"a list is bracketed", "groups", "[a b]"},
		{"a one-element list too", "aud", "[buddy-dev]"},
		{"null is empty", "n", ""},
	}
	for _, tt := range tests {
		if got := claims[tt.claim]; got != tt.want {
			t.Errorf("%s: %s = %q, want %q", tt.name, tt.claim, got, tt.want)
		}
	}
	if _, err := tokenClaims("not.a-jwt"); err == nil {
		t.Error("a malformed token yielded claims")
	}
}
