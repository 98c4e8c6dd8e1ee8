package devserver

import (
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"

	"github.com/p2/buddy/lambda/manifest"
)

// The events API Gateway's WebSocket API passes to the route functions,
// built as it builds them (payload format 1.0, the shape of
// aws-lambda-go's APIGatewayWebsocketProxyRequest); wsevents_test.go
// compares them with real ones.

func (g *wsGateway) baseContext(c *wsConn, routeKey, eventType string, now time.Time) events.APIGatewayWebsocketProxyRequestContext {
	id := newGatewayID()
	return events.APIGatewayWebsocketProxyRequestContext{
		RouteKey:          routeKey,
		EventType:         eventType,
		ExtendedRequestID: id,
		RequestID:         id,
		RequestTime:       requestTime(now),
		RequestTimeEpoch:  now.UnixMilli(),
		MessageDirection:  "IN",
		Stage:             g.stage,
		ConnectedAt:       c.connectedAt.UnixMilli(),
		Identity:          events.APIGatewayRequestIdentity{SourceIP: c.sourceIP, UserAgent: c.userAgent},
		DomainName:        c.host,
		ConnectionID:      c.id,
		APIID:             g.apiID,
	}
}

// connectEvent is the $connect event: the only one carrying the handshake's
// headers and query string (where the browser puts the token).
func (g *wsGateway) connectEvent(r *http.Request, c *wsConn, now time.Time) events.APIGatewayWebsocketProxyRequest {
	headers, multi := map[string]string{}, map[string][]string{}
	for k, vs := range r.Header {
		headers[k] = vs[len(vs)-1]
		multi[k] = vs
	}
	headers["Host"], multi["Host"] = r.Host, []string{r.Host}
	port := "80"
	if _, p, err := net.SplitHostPort(r.Host); err == nil {
		port = p
	}
	for k, v := range map[string]string{"X-Forwarded-For": c.sourceIP, "X-Forwarded-Port": port, "X-Forwarded-Proto": "http"} {
		headers[k], multi[k] = v, []string{v}
	}
	ev := events.APIGatewayWebsocketProxyRequest{
		Headers:           headers,
		MultiValueHeaders: multi,
		RequestContext:    g.baseContext(c, manifest.RouteConnect, "CONNECT", now),
		IsBase64Encoded:   false,
	}
	if q := r.URL.Query(); len(q) > 0 {
		ev.QueryStringParameters, ev.MultiValueQueryStringParameters = flattenQuery(q)
	}
	return ev
}

func (g *wsGateway) messageEvent(c *wsConn, routeKey string, body []byte) events.APIGatewayWebsocketProxyRequest {
	rc := g.baseContext(c, routeKey, "MESSAGE", time.Now())
	rc.MessageID = newGatewayID()
	return events.APIGatewayWebsocketProxyRequest{RequestContext: rc, Body: string(body)}
}

func (g *wsGateway) disconnectEvent(c *wsConn, code websocket.StatusCode, reason string) events.APIGatewayWebsocketProxyRequest {
	rc := g.baseContext(c, manifest.RouteDisconnect, "DISCONNECT", time.Now())
	rc.DisconnectStatusCode = int64(code)
	rc.DisconnectReason = &reason
	headers := map[string]string{"Host": c.host, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
	multi := map[string][]string{}
	for k, v := range headers {
		multi[k] = []string{v}
	}
	return events.APIGatewayWebsocketProxyRequest{Headers: headers, MultiValueHeaders: multi, RequestContext: rc}
}

// flattenQuery gives the v1 payload's two views of a query string: the
// last value of each name, and all of them.
func flattenQuery(q url.Values) (map[string]string, map[string][]string) {
	single, multi := map[string]string{}, map[string][]string{}
	for k, vs := range q {
		single[k] = vs[len(vs)-1]
		multi[k] = vs
	}
	return single, multi
}
