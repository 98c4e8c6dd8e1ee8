package devserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/p2/buddy/lambda/auth"
)

// httpMaxBody is the HTTP API's request payload limit (10 MB).
const httpMaxBody = 10 << 20

// CORS preflight answers, with the headers and methods the stack's HTTP
// API allows. Unlike the stack, the dev server names no origin but its own
// (loopbackGuard sets Access-Control-Allow-Origin), so a page served
// elsewhere cannot use it.
const (
	corsAllowHeaders = "authorization,content-type"
	corsAllowMethods = "GET,POST,PUT,PATCH,DELETE,OPTIONS"
	corsMaxAge       = "600"
)

// httpRoute is one route of the HTTP API: "GET /prompts/{id}".
type httpRoute struct {
	key    string
	method string
	segs   []string
	fn     *function
}

func newHTTPRoute(key string, fn *function) (httpRoute, error) {
	method, path, ok := strings.Cut(key, " ")
	if !ok || !strings.HasPrefix(path, "/") {
		return httpRoute{}, fmt.Errorf("route key %q is not \"METHOD /path\"", key)
	}
	return httpRoute{key: key, method: method, segs: strings.Split(path[1:], "/"), fn: fn}, nil
}

// match reports whether the route matches method and path, with the
// decoded path parameters.
func (rt *httpRoute) match(method, path string) (map[string]string, bool) {
	if method != rt.method || !strings.HasPrefix(path, "/") {
		return nil, false
	}
	segs := strings.Split(path[1:], "/")
	if len(segs) != len(rt.segs) {
		return nil, false
	}
	var params map[string]string
	for i, s := range rt.segs {
		if name, ok := strings.CutPrefix(s, "{"); ok && strings.HasSuffix(name, "}") {
			v, err := url.PathUnescape(segs[i])
			if err != nil || v == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[strings.TrimSuffix(name, "}")] = v
			continue
		}
		if segs[i] != s {
			return nil, false
		}
	}
	return params, true
}

// httpGateway plays an API Gateway HTTP API with a JWT authorizer on every
// route: it matches the route, verifies the bearer token with the same
// verifier $connect uses, builds the payload-format 2.0 event with the
// token's claims, invokes the route's function and maps its answer back.
type httpGateway struct {
	apiID       string
	iv          *invoker
	routes      []httpRoute
	verifier    auth.Verifier
	integration time.Duration
	log         *slog.Logger

	requests, unauthorized, functionErrors, timeouts atomic.Int64
}

func (g *httpGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") != "" && r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		w.Header().Set("Access-Control-Allow-Headers", corsAllowHeaders)
		w.Header().Set("Access-Control-Allow-Methods", corsAllowMethods)
		w.Header().Set("Access-Control-Max-Age", corsMaxAge)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	g.requests.Add(1)
	var route *httpRoute
	var params map[string]string
	for i := range g.routes {
		if p, ok := g.routes[i].match(r.Method, r.URL.Path); ok {
			route, params = &g.routes[i], p
			break
		}
	}
	if route == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	claims, err := g.authorize(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		g.unauthorized.Add(1)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Unauthorized"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, httpMaxBody+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Bad Request"})
		return
	}
	if len(body) > httpMaxBody {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"message": "Request Entity Too Large"})
		return
	}
	out, err := integrate(g.iv, route.fn, g.event(r, route, params, claims, body, time.Now()), g.integration)
	var resp events.APIGatewayV2HTTPResponse
	if err == nil {
		err = json.Unmarshal(out, &resp)
	}
	switch {
	case errors.Is(err, errIntegrationTimeout):
		g.timeouts.Add(1)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "Service Unavailable"})
		return
	case err != nil:
		g.functionErrors.Add(1)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "Internal Server Error"})
		return
	}
	writeV2Response(w, resp)
}

// authorize is the JWT authorizer: identity source
// $request.header.Authorization, an optional "Bearer " prefix, then the
// normal verification. The event carries every claim of the verified
// token as a string, as API Gateway passes them.
func (g *httpGateway) authorize(ctx context.Context, header string) (map[string]string, error) {
	token := strings.TrimSpace(header)
	if len(token) > 7 && strings.EqualFold(token[:7], "bearer ") {
		token = strings.TrimSpace(token[7:])
	}
	if token == "" {
		return nil, auth.ErrUnauthorized
	}
	if _, err := g.verifier.Verify(ctx, token); err != nil {
		return nil, err
	}
	return tokenClaims(token)
}

// tokenClaims decodes the (already verified) payload of a compact JWT.
func tokenClaims(token string) (map[string]string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, auth.ErrUnauthorized
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", auth.ErrUnauthorized, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", auth.ErrUnauthorized, err)
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = claimString(v)
	}
	return out, nil
}

// claimString renders a claim the way API Gateway does: numbers as their
// digits, lists as "[a b]".
func claimString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = claimString(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case nil:
		return ""
	case map[string]any:
		b, _ := json.Marshal(t)
		return string(b)
	default:
		return fmt.Sprint(t)
	}
}

// event builds the payload-format 2.0 event: lower-case headers with
// repeated values joined by commas, cookies apart, the query string both
// raw and parsed, a body that is not UTF-8 text base64-encoded.
func (g *httpGateway) event(r *http.Request, rt *httpRoute, params, claims map[string]string, body []byte, now time.Time) events.APIGatewayV2HTTPRequest {
	headers := map[string]string{}
	var cookies []string
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if lk == "cookie" {
			for _, v := range vs {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[lk] = strings.Join(vs, ",")
	}
	headers["host"] = r.Host
	headers["x-forwarded-for"] = remoteIP(r)
	headers["x-forwarded-proto"] = "http"
	if len(body) > 0 {
		headers["content-length"] = fmt.Sprint(len(body))
	}
	id := newGatewayID()
	ev := events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       rt.key,
		RawPath:        r.URL.EscapedPath(),
		RawQueryString: r.URL.RawQuery,
		Cookies:        cookies,
		Headers:        headers,
		PathParameters: params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     rt.key,
			Stage:        "$default",
			RequestID:    id,
			APIID:        g.apiID,
			DomainName:   r.Host,
			DomainPrefix: strings.SplitN(r.Host, ".", 2)[0],
			Time:         requestTime(now),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  remoteIP(r),
				UserAgent: r.UserAgent(),
			},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: claims, Scopes: scopes(claims)},
			},
		},
	}
	if q := r.URL.Query(); len(q) > 0 {
		ev.QueryStringParameters = map[string]string{}
		for k, vs := range q {
			ev.QueryStringParameters[k] = strings.Join(vs, ",")
		}
	}
	if len(body) > 0 {
		if utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		}
	}
	return ev
}

func scopes(claims map[string]string) []string {
	s := claims["scope"]
	if s == "" {
		s = claims["scp"]
	}
	return strings.Fields(strings.Trim(s, "[]"))
}

func writeV2Response(w http.ResponseWriter, resp events.APIGatewayV2HTTPResponse) {
	h := w.Header()
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	keys := make([]string, 0, len(resp.Headers))
	for k := range resp.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		h.Set(k, resp.Headers[k])
	}
	for _, c := range resp.Cookies {
		h.Add("Set-Cookie", c)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if b, err := base64.StdEncoding.DecodeString(resp.Body); err == nil {
			body = b
		}
	}
	status := resp.StatusCode
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
