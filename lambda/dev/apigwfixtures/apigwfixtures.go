// Package apigwfixtures holds real API Gateway payloads, the fixtures
// aws-lambda-go keeps in events/testdata (v1.50.0, Apache 2.0: its LICENSE
// lies beside them in testdata/), byte for byte as upstream wrote them. A
// test starts from one and changes, in Go at load time, only what names
// its own traffic (ids, routes, claims), so what the handlers receive is
// the shape AWS sends rather than one written by the same hand as the
// handlers.
package apigwfixtures

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// The fixtures, by upstream file name.
const (
	// WebSocketConnect is a $connect event. Upstream's one carries, besides
	// the WebSocket fields, those of a REST API proxy event (resource,
	// path, httpMethod, stageVariables, an authorizer and a Cognito
	// identity), which a WebSocket $connect never has.
	WebSocketConnect = "apigw-websocket-request.json"
	// WebSocketMessage is a MESSAGE event ($default route).
	WebSocketMessage = "apigw-websocket-request-send-message.json"
	// WebSocketDisconnect is a $disconnect event.
	WebSocketDisconnect = "apigw-websocket-request-disconnect.json"
	// HTTPJWT is an HTTP API (payload format 2.0) event with a JWT
	// authorizer's claims.
	HTTPJWT = "apigw-v2-request-jwt-authorizer.json"
)

// Names lists the fixtures.
var Names = []string{WebSocketConnect, WebSocketMessage, WebSocketDisconnect, HTTPJWT}

//go:embed testdata/*.json
var files embed.FS

// Raw is the fixture as upstream wrote it.
func Raw(name string) []byte {
	b, err := files.ReadFile("testdata/" + name)
	if err != nil {
		panic("apigwfixtures: no fixture " + name) // the set is compiled in
	}
	return b
}

// Event is a fixture decoded as a JSON object (numbers kept as written),
// to be changed in place before it is sent.
type Event map[string]any

// Load decodes a fresh copy of the fixture.
func Load(name string) Event {
	dec := json.NewDecoder(bytes.NewReader(Raw(name)))
	dec.UseNumber()
	var e Event
	if err := dec.Decode(&e); err != nil {
		panic(fmt.Sprintf("apigwfixtures: %s: %v", name, err))
	}
	return e
}

// Set sets the value at a dotted path ("requestContext.connectionId"),
// creating objects on the way, and returns e.
func (e Event) Set(path string, v any) Event {
	keys := strings.Split(path, ".")
	m := map[string]any(e)
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
	return e
}

// Get returns the value at a dotted path, nil when absent.
func (e Event) Get(path string) any {
	var v any = map[string]any(e)
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// JSON encodes the event, the payload a function receives.
func (e Event) JSON() []byte {
	b, err := json.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("apigwfixtures: encode: %v", err))
	}
	return b
}

// Connect is the $connect fixture for connectionID, with token in the
// query string where a browser puts it (none when empty).
func Connect(connectionID, token string) Event {
	e := Load(WebSocketConnect).Set("requestContext.connectionId", connectionID)
	if token != "" {
		e.Set("queryStringParameters.token", token).
			Set("multiValueQueryStringParameters.token", []any{token})
	}
	return e
}

// Message is the MESSAGE fixture for connectionID on routeKey, carrying
// the client frame body.
func Message(connectionID, routeKey, body string) Event {
	return Load(WebSocketMessage).
		Set("requestContext.connectionId", connectionID).
		Set("requestContext.routeKey", routeKey).
		Set("body", body)
}

// Disconnect is the $disconnect fixture for connectionID.
func Disconnect(connectionID string) Event {
	return Load(WebSocketDisconnect).Set("requestContext.connectionId", connectionID)
}

// HTTP is the HTTP API fixture on one route: routeKey ("GET
// /prompts/{id}"), the request's path and its parameters, query string
// and body, and the claims of the caller's verified token.
type HTTP struct {
	RouteKey string
	// Path is the request's path; when empty, the route's with PathParams
	// put in.
	Path       string
	PathParams map[string]string
	Query      map[string]string // parameter → comma-joined values
	Body       string
	Claims     map[string]string
}

// Event builds the event.
func (h HTTP) Event() Event {
	method, path, _ := strings.Cut(h.RouteKey, " ")
	if h.Path != "" {
		path = h.Path
	} else {
		for k, v := range h.PathParams {
			path = strings.ReplaceAll(path, "{"+k+"}", v)
		}
	}
	raw := make([]string, 0, len(h.Query))
	query := map[string]any{}
	for k, v := range h.Query {
		for _, one := range strings.Split(v, ",") {
			raw = append(raw, k+"="+one)
		}
		query[k] = v
	}
	params := map[string]any{}
	for k, v := range h.PathParams {
		params[k] = v
	}
	claims := map[string]any{}
	for k, v := range h.Claims {
		claims[k] = v
	}
	e := Load(HTTPJWT).
		Set("routeKey", h.RouteKey).
		Set("rawPath", path).
		Set("rawQueryString", strings.Join(raw, "&")).
		Set("queryStringParameters", query).
		Set("pathParameters", params).
		Set("body", h.Body).
		Set("requestContext.routeKey", h.RouteKey).
		Set("requestContext.http.method", method).
		Set("requestContext.http.path", path).
		Set("requestContext.authorizer.jwt.claims", claims)
	// A route without them gets none, as API Gateway sends none.
	if len(h.Query) == 0 {
		delete(e, "queryStringParameters")
	}
	if len(h.PathParams) == 0 {
		delete(e, "pathParameters")
	}
	if h.Body == "" {
		delete(e, "body")
	}
	return e
}

// Request is the event as aws-lambda-go decodes it for a handler.
func (h HTTP) Request() events.APIGatewayV2HTTPRequest {
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(h.Event().JSON(), &ev); err != nil {
		panic(fmt.Sprintf("apigwfixtures: decode %s: %v", h.RouteKey, err))
	}
	return ev
}
