// Package wshandler adapts API Gateway WebSocket events ($connect,
// $disconnect, the message routes and the reply jobs) to Buddy's logic.
// Each exported method is what a function's main hands to lambda.Start, and
// what the local dev server invokes with the same events. The HTTP API's
// adapter is httpapi.Router.
package wshandler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/p2/buddy/lambda/auth"
	"github.com/p2/buddy/lambda/chat"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/obs"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/wsapi"
)

// WebSocket serves the three WebSocket functions.
type WebSocket struct {
	Function string
	Store    store.Store
	Verifier auth.Verifier // connect only
	Chat     *chat.Service // message only
	Posters  chat.PosterFor
	// Endpoint overrides the @connections endpoint derived from the event
	// (local runs); empty in AWS.
	Endpoint      string
	ConnectionTTL time.Duration
	Log           *slog.Logger
	Now           func() time.Time

	conns connCache
}

func (w *WebSocket) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *WebSocket) summary(ctx context.Context, route, requestID string) *obs.Summary {
	s := &obs.Summary{Function: w.Function, Route: route, RequestID: requestID, Start: time.Now()}
	if lc, ok := lambdacontext.FromContext(ctx); ok && s.RequestID == "" {
		s.RequestID = lc.AwsRequestID
	}
	return s
}

var ok = events.APIGatewayProxyResponse{StatusCode: 200}

// Connect verifies the token in the query string and records the
// connection. A bad or missing token answers 401 and stores nothing.
func (w *WebSocket) Connect(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	sum := w.summary(ctx, manifest.RouteConnect, ev.RequestContext.RequestID)
	sum.ConnectionID = ev.RequestContext.ConnectionID
	defer sum.Log(ctx, w.Log)

	token := ev.QueryStringParameters["token"]
	if token == "" {
		sum.Outcome, sum.Status, sum.Err = obs.OutcomeRejected, 401, errors.New("no token")
		return events.APIGatewayProxyResponse{StatusCode: 401, Body: "missing token"}, nil
	}
	claims, err := w.Verifier.Verify(ctx, token)
	if err != nil {
		sum.Outcome, sum.Status, sum.Err = obs.OutcomeRejected, 401, err
		return events.APIGatewayProxyResponse{StatusCode: 401, Body: "invalid token"}, nil
	}
	sum.User = claims.Subject
	now := w.now()
	if err := w.Store.PutConnection(ctx, store.Connection{
		ConnectionID: ev.RequestContext.ConnectionID,
		UserID:       claims.Subject,
		ConnectedAt:  now,
		ExpiresAt:    now.Add(w.ConnectionTTL),
	}); err != nil {
		sum.Outcome, sum.Status, sum.Err = obs.OutcomeServerError, 500, err
		return events.APIGatewayProxyResponse{StatusCode: 500}, nil
	}
	sum.Outcome, sum.Status = obs.OutcomeOK, 200
	return ok, nil
}

// Disconnect forgets the connection.
func (w *WebSocket) Disconnect(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	sum := w.summary(ctx, manifest.RouteDisconnect, ev.RequestContext.RequestID)
	sum.ConnectionID = ev.RequestContext.ConnectionID
	defer sum.Log(ctx, w.Log)
	w.conns.forget(ev.RequestContext.ConnectionID)
	if err := w.Store.DeleteConnection(ctx, ev.RequestContext.ConnectionID); err != nil {
		sum.Outcome, sum.Err = obs.OutcomeServerError, err
		return events.APIGatewayProxyResponse{StatusCode: 500}, nil
	}
	sum.Outcome = obs.OutcomeOK
	return ok, nil
}

// Message is the websocket-message function: it receives API Gateway route
// events (sendMessage, ping, $default) and its own reply Jobs.
func (w *WebSocket) Message(ctx context.Context, raw json.RawMessage) (any, error) {
	var probe struct {
		Kind string `json:"kind"`
	}
	_ = json.Unmarshal(raw, &probe)
	if probe.Kind == chat.JobKind {
		var job chat.Job
		if err := json.Unmarshal(raw, &job); err != nil {
			return nil, fmt.Errorf("decode job: %w", err)
		}
		return nil, w.Reply(ctx, job)
	}
	var ev events.APIGatewayWebsocketProxyRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	return w.Route(ctx, ev)
}

// Route answers one client frame. It always answers 200 to API Gateway:
// what the client must know travels as a frame, and a bad frame never
// closes the socket.
func (w *WebSocket) Route(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	rc := ev.RequestContext
	sum := w.summary(ctx, rc.RouteKey, rc.RequestID)
	sum.ConnectionID = rc.ConnectionID
	defer sum.Log(ctx, w.Log)

	endpoint := w.Endpoint
	if endpoint == "" {
		endpoint = wsapi.EndpointFor(rc.DomainName, rc.Stage)
	}
	poster := wsapi.WithPostTimeout(w.Posters(endpoint), wsapi.DefaultPostTimeout)
	answer := func(f wsapi.Frame) {
		if err := poster.Post(ctx, rc.ConnectionID, wsapi.Encode(f)); err != nil {
			sum.Err = errors.Join(sum.Err, fmt.Errorf("post %s: %w", f.Type, err))
		}
	}
	fail := func(requestID, code, msg string, outcome string, err error) (events.APIGatewayProxyResponse, error) {
		sum.Outcome, sum.Code, sum.Err = outcome, code, err
		answer(wsapi.Frame{Type: wsapi.TypeError, RequestID: requestID, Code: code, Message: msg})
		return ok, nil
	}

	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		// Binary frames are not part of the protocol.
		return fail("", errcode.BadRequest, "frames must be JSON text", obs.OutcomeRejected, nil)
	}
	f, perr := wsapi.ParseClientFrame(body)
	if perr != nil {
		sum.ClientRequestID = perr.RequestID
		return fail(perr.RequestID, perr.Code, perr.Message, obs.OutcomeRejected, nil)
	}
	sum.ClientRequestID = f.RequestID

	conn, err := w.connection(ctx, rc.ConnectionID)
	if errors.Is(err, store.ErrNotFound) {
		return fail(f.RequestID, errcode.Unauthorized, "connection expired; reconnect with a fresh token", obs.OutcomeRejected, nil)
	}
	if err != nil {
		return fail(f.RequestID, errcode.Internal, "could not resolve the connection", obs.OutcomeServerError, err)
	}
	sum.User = conn.UserID

	switch f.Action {
	case wsapi.ActionPing:
		answer(wsapi.Frame{Type: wsapi.TypePong, RequestID: f.RequestID})
		sum.Outcome = obs.OutcomeOK
		return ok, nil
	case wsapi.ActionSendMessage:
		job, rej := w.Chat.Accept(ctx, conn.UserID, rc.ConnectionID, endpoint, f)
		if rej != nil {
			outcome := obs.OutcomeRejected
			if rej.Code == errcode.Internal {
				outcome = obs.OutcomeServerError
			}
			return fail(f.RequestID, rej.Code, rej.Message, outcome, rej.Err)
		}
		if err := w.Chat.Dispatch.Dispatch(ctx, job); err != nil {
			// The user's message is stored; the client may retry.
			return fail(f.RequestID, errcode.Internal, "could not start the reply; try again", obs.OutcomeServerError, err)
		}
		sum.Outcome = obs.OutcomeOK
		return ok, nil
	}
	return fail(f.RequestID, errcode.BadRequest, "unknown action", obs.OutcomeRejected, nil)
}

// connection resolves a connection, through the cache when it can.
func (w *WebSocket) connection(ctx context.Context, id string) (store.Connection, error) {
	now := w.now()
	if c, ok := w.conns.get(id, now); ok {
		return c, nil
	}
	c, err := w.Store.GetConnection(ctx, id)
	if err != nil {
		return c, err
	}
	w.conns.put(c)
	return c, nil
}

// Reply runs one reply Job (the asynchronous half of sendMessage).
func (w *WebSocket) Reply(ctx context.Context, job chat.Job) error {
	sum := w.summary(ctx, "", "")
	defer sum.Log(ctx, w.Log)
	return w.Chat.Run(ctx, job, sum)
}
