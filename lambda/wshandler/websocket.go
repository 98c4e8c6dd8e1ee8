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
		ExpiresAt:    connectionExpiry(now, w.ConnectionTTL, claims.ExpiresAt),
	}); err != nil {
		sum.Outcome, sum.Status, sum.Err = obs.OutcomeServerError, 500, err
		return events.APIGatewayProxyResponse{StatusCode: 500}, nil
	}
	sum.Outcome, sum.Status = obs.OutcomeOK, 200
	return ok, nil
}

// connectionExpiry is when a connection stops being served: its TTL, or
// its token's expiry when that comes first (a socket lives no longer than
// the token that opened it).
func connectionExpiry(now time.Time, ttl time.Duration, tokenExp int64) time.Time {
	exp := now.Add(ttl)
	if tokenExp > 0 {
		if t := time.Unix(tokenExp, 0); t.Before(exp) {
			return t
		}
	}
	return exp
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
// events (sendMessage, stop, resume, ping, $default), its own reply Jobs,
// and, from its failure destination's queue, the jobs Lambda gave up on.
func (w *WebSocket) Message(ctx context.Context, raw json.RawMessage) (any, error) {
	var probe struct {
		Kind    string `json:"kind"`
		Records []struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
	}
	_ = json.Unmarshal(raw, &probe)
	if len(probe.Records) > 0 && probe.Records[0].EventSource == "aws:sqs" {
		var ev events.SQSEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("decode queue event: %w", err)
		}
		return w.Abandoned(ctx, ev), nil
	}
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
	ctx = sum.Context(ctx)

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
	refuse := func(requestID string, rej *chat.Reject) (events.APIGatewayProxyResponse, error) {
		sum.Outcome, sum.Code, sum.Err = rejected(rej), rej.Code, rej.Err
		answer(wsapi.Frame{Type: wsapi.TypeError, RequestID: requestID, Code: rej.Code, Message: rej.Message, RetryAfterMs: int(rej.RetryAfter.Milliseconds())})
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
			return refuse(f.RequestID, rej)
		}
		// start goes out before the job exists, so it always precedes the
		// reply's first delta.
		answer(wsapi.Frame{Type: wsapi.TypeStart, RequestID: f.RequestID, ConversationID: job.ConversationID, MessageID: job.AssistantMessageID, Model: job.Model})
		if err := w.Chat.Dispatch.Dispatch(ctx, job); err != nil {
			// The user's message is stored; the reply is failed and the
			// client told, with its messageId, by Unstarted.
			sum.Outcome, sum.Err = obs.OutcomeServerError, err
			if uerr := w.Chat.Unstarted(context.WithoutCancel(ctx), job); uerr != nil {
				sum.Err = errors.Join(err, uerr)
			}
			return ok, nil
		}
		sum.Outcome = obs.OutcomeOK
		return ok, nil
	case wsapi.ActionStop:
		if rej := w.Chat.Stop(ctx, conn.UserID, f); rej != nil {
			return refuse(f.RequestID, rej)
		}
		sum.Outcome = obs.OutcomeOK
		return ok, nil
	case wsapi.ActionResume:
		if rej := w.Chat.Resume(ctx, conn.UserID, rc.ConnectionID, endpoint, f); rej != nil {
			return refuse(f.RequestID, rej)
		}
		sum.Outcome = obs.OutcomeOK
		return ok, nil
	}
	return fail(f.RequestID, errcode.BadRequest, "unknown action", obs.OutcomeRejected, nil)
}

// rejected is the summary outcome of a refused request.
func rejected(rej *chat.Reject) string {
	if rej.Code == errcode.Internal {
		return obs.OutcomeServerError
	}
	return obs.OutcomeRejected
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
	return w.Chat.Run(sum.Context(ctx), job, sum)
}

// Abandoned handles the records of the message function's failure
// destination queue: reply jobs Lambda gave up on (throttled until their
// event age ran out, or failed to start). Each reply is failed and its
// client told; a record that cannot be handled is reported back so the
// queue delivers it again.
func (w *WebSocket) Abandoned(ctx context.Context, ev events.SQSEvent) events.SQSEventResponse {
	var resp events.SQSEventResponse
	for _, rec := range ev.Records {
		sum := w.summary(ctx, "abandoned", rec.MessageId)
		job, err := abandonedJob(rec.Body)
		if err != nil {
			// Delivering it again cannot help: log it and let it go.
			sum.Outcome, sum.Err = obs.OutcomeServerError, err
			sum.Log(ctx, w.Log)
			continue
		}
		sum.ClientRequestID, sum.ConnectionID, sum.User = job.RequestID, job.ConnectionID, job.UserID
		if err := w.Chat.Unstarted(sum.Context(ctx), job); err != nil {
			sum.Outcome, sum.Err = obs.OutcomeServerError, err
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		} else {
			sum.Outcome = obs.OutcomeOK
		}
		sum.Log(ctx, w.Log)
	}
	return resp
}

// abandonedJob reads the reply job out of a Lambda asynchronous
// invocation record (the body a failure destination receives: the
// original payload is its requestPayload).
func abandonedJob(body string) (chat.Job, error) {
	var rec struct {
		RequestPayload chat.Job `json:"requestPayload"`
	}
	if err := json.Unmarshal([]byte(body), &rec); err != nil {
		return chat.Job{}, fmt.Errorf("decode invocation record: %w", err)
	}
	if rec.RequestPayload.Kind != chat.JobKind {
		return chat.Job{}, fmt.Errorf("invocation record holds no reply job")
	}
	return rec.RequestPayload, nil
}
