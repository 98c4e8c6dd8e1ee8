package devserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/dev/apigwfixtures"
)

// shape says how a dev-server event is compared with a real one.
type shape struct {
	// ids and times: generated per request, so only their JSON type is
	// compared (an object's keys still are).
	normalised []string
	// data: objects whose keys are the request's own (headers, query
	// parameters, claims), not the payload's schema; only the JSON type
	// of their values is compared.
	data []string
	// upstreamOnly: keys of the fixture that API Gateway does not send on
	// this API, each with the reason, which the dev server rightly omits.
	upstreamOnly map[string]string
}

// Per-request ids and times of both payload formats.
var generated = []string{
	"requestContext.requestId", "requestContext.extendedRequestId", "requestContext.messageId",
	"requestContext.requestTime", "requestContext.requestTimeEpoch",
	"requestContext.time", "requestContext.timeEpoch",
}

// restProxyOnly are the REST API proxy fields aws-lambda-go's $connect
// fixture mixes into its WebSocket event.
const restProxyOnly = "a REST API proxy field, which upstream's $connect fixture carries and a WebSocket API never sends"

func TestEventsHaveTheShapeOfAPIGateways(t *testing.T) {
	// Each dev-server event is built from the inputs its fixture records
	// (stage, API id, connection, client, body), so that after the ids
	// and times every field must match.
	disconnected := &wsConn{
		id: "R1kmxc2VNjMCFIA=", connectedAt: time.UnixMilli(1705751697419), sourceIP: "49.105.91.154",
		userAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Safari/537.36",
		host:      "dl7ptocha9.execute-api.ap-northeast-1.amazonaws.com",
	}
	connecting := &wsConn{
		id: "TWegAcC4EowCHnA=", connectedAt: time.UnixMilli(1547230720092), sourceIP: "192.168.196.186",
		userAgent: "PostmanRuntime/2.4.5", host: "*.execute-api.eu-central-1.amazonaws.com",
	}
	handshake := httptest.NewRequest("GET", "http://"+connecting.host+"/testStage?name=me", nil)
	handshake.Header.Set("Sec-WebSocket-Version", "13")
	handshake.Header.Set("User-Agent", connecting.userAgent)

	httpReq := httptest.NewRequest("GET", "http://id.execute-api.us-east-1.amazonaws.com/my/path?parameter1=value1&parameter1=value2&parameter2=value", strings.NewReader("{\r\n\t\"a\": 1\r\n}"))
	httpReq.RemoteAddr = "IP:443"
	httpReq.Header.Set("Header1", "value1")
	httpReq.Header.Set("Header2", "value2")
	httpReq.Header.Set("Cookie", "cookie1; cookie2")
	httpReq.Header.Set("User-Agent", "agent")
	claims := map[string]string{"claim1": "value1", "claim2": "value2", "scope": "scope1 scope2"}
	httpEvent := (&httpGateway{apiID: "api-id"}).event(httpReq, &httpRoute{key: "$default"},
		map[string]string{"proxy": "hello/world"}, claims, []byte("{\r\n\t\"a\": 1\r\n}"), time.Now())

	gw := func(stage, apiID string) *wsGateway { return &wsGateway{stage: stage, apiID: apiID} }
	tests := []struct {
		name    string
		fixture string
		event   any
		shape   shape
	}{
		{"$disconnect event", apigwfixtures.WebSocketDisconnect,
			gw("prod", "dl7ptocha9").disconnectEvent(disconnected, 1001, ""),
			shape{normalised: generated}},
		{"MESSAGE event", apigwfixtures.WebSocketMessage,
			gw("prod", "gy415nuibc").messageEvent(disconnected, "$default", []byte("{\r\n\t\"a\": 1\r\n}")),
			shape{normalised: generated}},
		{"$connect event", apigwfixtures.WebSocketConnect,
			gw("testStage", "gy415nuibc").connectEvent(handshake, connecting, time.Now()),
			shape{
				normalised: generated,
				data:       []string{"headers", "multiValueHeaders"},
				upstreamOnly: map[string]string{
					"resource": restProxyOnly, "path": restProxyOnly, "httpMethod": restProxyOnly,
					"pathParameters": restProxyOnly, "stageVariables": restProxyOnly, "body": restProxyOnly,
					"requestContext.accountId": restProxyOnly, "requestContext.resourceId": restProxyOnly,
					"requestContext.resourcePath": restProxyOnly, "requestContext.authorizer": restProxyOnly,
					"requestContext.httpMethod": restProxyOnly, "requestContext.error": restProxyOnly,
					"requestContext.integrationLatency": restProxyOnly, "requestContext.status": restProxyOnly,
					"requestContext.identity.cognitoIdentityPoolId": restProxyOnly, "requestContext.identity.accountId": restProxyOnly,
					"requestContext.identity.cognitoIdentityId": restProxyOnly, "requestContext.identity.caller": restProxyOnly,
					"requestContext.identity.apiKey": restProxyOnly, "requestContext.identity.apiKeyId": restProxyOnly,
					"requestContext.identity.accessKey": restProxyOnly, "requestContext.identity.cognitoAuthenticationType": restProxyOnly,
					"requestContext.identity.cognitoAuthenticationProvider": restProxyOnly, "requestContext.identity.userArn": restProxyOnly,
					"requestContext.identity.user": restProxyOnly,
				},
			}},
		{"HTTP API event", apigwfixtures.HTTPJWT, httpEvent,
			shape{
				// accountId is the stack's account, which the dev
				// server has none of; authentication carries a
				// client certificate, which the API does not ask for
				// (no mTLS), so only its shape can match.
				normalised: append(slices.Clone(generated), "requestContext.accountId", "requestContext.authentication"),
				data:       []string{"headers", "requestContext.authorizer.jwt.claims"},
				upstreamOnly: map[string]string{
					"stageVariables": "the stack defines no stage variables, so API Gateway sends none",
				},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := decode(t, apigwfixtures.Raw(tt.fixture))
			b, err := json.Marshal(tt.event) // as the invoker sends it
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range compareShape("", want, decode(t, b), tt.shape) {
				t.Error(d)
			}
		})
	}
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// compareShape lists how got differs from want: missing or extra keys at
// any level, a value of another JSON type, or another value.
func compareShape(path string, want, got any, s shape) []string {
	at := path
	if at == "" {
		at = "(the event)"
	}
	if kind(want) != kind(got) {
		return []string{fmt.Sprintf("%s: %s %s, upstream has %s %s", at, kind(got), brief(got), kind(want), brief(want))}
	}
	wm, isObject := want.(map[string]any)
	if !isObject {
		if slices.Contains(s.normalised, path) || underAny(path, s.data) || underAny(path, s.normalised) {
			return nil
		}
		if fmt.Sprint(want) != fmt.Sprint(got) {
			return []string{fmt.Sprintf("%s: %s, upstream has %s", at, brief(got), brief(want))}
		}
		return nil
	}
	gm := got.(map[string]any)
	if slices.Contains(s.data, path) {
		var out []string
		for k, v := range gm {
			for _, w := range wm {
				if kind(w) != kind(v) {
					out = append(out, fmt.Sprintf("%s.%s: %s, upstream's values are %s", at, k, kind(v), kind(w)))
				}
				break
			}
		}
		return out
	}
	var out []string
	for _, k := range sortedKeys(wm) {
		p := join(path, k)
		g, ok := gm[k]
		if !ok {
			if _, fine := s.upstreamOnly[p]; !fine {
				out = append(out, fmt.Sprintf("%s: missing (upstream has %s)", p, brief(wm[k])))
			}
			continue
		}
		out = append(out, compareShape(p, wm[k], g, s)...)
	}
	for _, k := range sortedKeys(gm) {
		if _, ok := wm[k]; !ok {
			out = append(out, fmt.Sprintf("%s: not in upstream's event", join(path, k)))
		}
	}
	return out
}

func underAny(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p+".") {
			return true
		}
	}
	return false
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func brief(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 60 {
		return string(b[:60]) + "…"
	}
	return string(b)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
