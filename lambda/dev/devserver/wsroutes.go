package devserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/p2/buddy/lambda/manifest"
)

// Routing a client's message as API Gateway does: the route selection
// expression, the integration with the route's function, and API
// Gateway's own messages when the integration fails.

// route invokes the route selected for one message. The route's answer is
// discarded (the routes have no route response); a failed or timed-out
// integration reaches the client as API Gateway's own error message.
func (g *wsGateway) route(c *wsConn, body []byte) {
	key := g.selectRoute(body)
	ev := g.messageEvent(c, key, body)
	if _, ok := g.routes[key]; !ok {
		g.sendGatewayError(c, "Forbidden", ev.RequestContext.RequestID)
		return
	}
	_, err := g.invokeRoute(key, ev)
	switch {
	case errors.Is(err, errIntegrationTimeout):
		g.sendGatewayError(c, "Endpoint request timed out", ev.RequestContext.RequestID)
	case err != nil:
		g.sendGatewayError(c, "Internal server error", ev.RequestContext.RequestID)
	}
}

func (g *wsGateway) sendGatewayError(c *wsConn, msg, requestID string) {
	b, _ := json.Marshal(map[string]string{"message": msg, "connectionId": c.id, "requestId": requestID})
	if g.state(c) == stateOpen {
		_ = c.send(context.Background(), b, g.limits.maxFrame)
	}
}

// selectRoute applies the route selection expression $request.body.action:
// a JSON object whose action names a route picks it; anything else, non-JSON
// included, goes to $default.
func (g *wsGateway) selectRoute(body []byte) string {
	var probe struct {
		Action any `json:"action"`
	}
	if json.Unmarshal(body, &probe) == nil {
		if a, ok := probe.Action.(string); ok && !strings.HasPrefix(a, "$") {
			if _, ok := g.routes[a]; ok {
				return a
			}
		}
	}
	return manifest.RouteDefault
}

func (g *wsGateway) invokeRoute(key string, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	var resp events.APIGatewayProxyResponse
	fn, ok := g.routes[key]
	if !ok {
		return resp, errors.New("no integration for route " + key)
	}
	out, err := integrate(g.iv, fn, ev, g.limits.integration)
	if errors.Is(err, errIntegrationTimeout) {
		g.stats.timeouts.Add(1)
		return resp, err
	}
	if err != nil {
		g.stats.functionErrors.Add(1)
		return resp, err
	}
	if len(out) > 0 && string(out) != "null" {
		if err := json.Unmarshal(out, &resp); err != nil {
			g.stats.functionErrors.Add(1)
			return resp, err
		}
	}
	if resp.StatusCode == 0 {
		resp.StatusCode = http.StatusOK
	}
	return resp, nil
}
