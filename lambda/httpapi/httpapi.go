// Package httpapi serves the HTTP API: conversations, saved
// prompts and usage. API Gateway's JWT authorizer has verified the token in
// AWS (the local dev server does the same with the same verifier); the user
// is the `sub` claim it passes along. A user only ever sees their own data:
// every lookup is keyed by that user, so another user's id is a 404.
package httpapi

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
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/obs"
	"github.com/p2/buddy/lambda/store"
)

// MaxBodyBytes bounds request bodies (the largest valid one is a prompt).
const MaxBodyBytes = 128 * 1024

// MaxResponseBytes bounds response bodies: what a client must be ready to
// read. Routes whose answer could grow past it page by bytes as well as by
// count (pageRoom).
const MaxResponseBytes = 4 << 20

// MaxEnvelopeBytes bounds what a function returns to Lambda: the API
// Gateway response envelope (events.APIGatewayV2HTTPResponse as JSON), in
// which the body is a JSON string, so each quote, backslash and control
// character of the body is escaped again: a body of 4 MB can make an
// envelope of 8 MB and more. Lambda refuses a synchronous response over
// 6,291,456 bytes; this keeps room to spare under it. Paged routes end a
// page before it (pageRoom); Handle answers 500 rather than pass it.
const MaxEnvelopeBytes = 6_000_000

// Request is what a route handler gets: the caller and the parsed request.
type Request struct {
	User  string
	Event events.APIGatewayV2HTTPRequest
	Body  []byte
}

// Param is a path parameter.
func (r *Request) Param(name string) string { return r.Event.PathParameters[name] }

// ID is the {id} path parameter of a route on one of what (a conversation,
// a prompt). An id the server could never have made is not found, as an
// unknown one is, without asking the store.
func (r *Request) ID(what string) (string, *Error) {
	id := r.Param("id")
	if !ids.Valid(id) {
		return "", NotFound(what)
	}
	return id, nil
}

// Query is a query string parameter.
func (r *Request) Query(name string) string { return r.Event.QueryStringParameters[name] }

// Decode reads the JSON body strictly into v: unknown fields and trailing
// data are errors, so a typo in a field name is reported, not ignored.
func (r *Request) Decode(v any) *Error {
	if len(bytes.TrimSpace(r.Body)) == 0 {
		return Errorf(http.StatusBadRequest, errcode.BadRequest, "a JSON body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(http.StatusBadRequest, errcode.BadRequest, "invalid JSON body: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Errorf(http.StatusBadRequest, errcode.BadRequest, "invalid JSON body: unexpected data after the object")
	}
	return nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be a %s", te.Field, te.Type.Kind())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	return err.Error() // e.g. `json: unknown field "x"`
}

// Error is an API error answer.
type Error struct {
	Status  int
	Code    string
	Message string
	Err     error // internal cause, logged, never sent
}

// Errorf makes an Error answer.
func Errorf(status int, code, format string, a ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, a...)}
}

// Internal hides err from the client and keeps it for the log.
func Internal(err error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: errcode.Internal, Message: "internal error", Err: err}
}

// NotFound is the answer for unknown and foreign ids alike.
func NotFound(what string) *Error {
	return Errorf(http.StatusNotFound, errcode.NotFound, "%s not found", what)
}

// storeError answers a store failure: not found (what), or internal.
func storeError(err error, what string) *Error {
	if errors.Is(err, store.ErrNotFound) {
		return NotFound(what)
	}
	return Internal(err)
}

// Response is a successful answer: a status and a JSON body (nil: none).
type Response struct {
	Status int
	Body   any
}

// HandlerFunc serves one route.
type HandlerFunc func(ctx context.Context, r *Request) (Response, *Error)

// Router serves one function's routes, keyed by API Gateway route key
// ("GET /prompts/{id}").
type Router struct {
	Function string
	Routes   map[string]HandlerFunc
	Log      *slog.Logger
}

// Handle is the Lambda handler.
func (rt *Router) Handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	sum := &obs.Summary{Function: rt.Function, Route: ev.RouteKey, RequestID: ev.RequestContext.RequestID, Start: time.Now()}
	if lc, ok := lambdacontext.FromContext(ctx); ok && sum.RequestID == "" {
		sum.RequestID = lc.AwsRequestID
	}
	defer sum.Log(ctx, rt.Log)
	ctx = sum.Context(ctx)

	resp, apiErr := rt.serve(ctx, ev, sum)
	if apiErr != nil && errors.Is(apiErr.Err, store.ErrContention) {
		// The caller's own concurrent requests met on the same items:
		// not our fault, and over in a moment.
		apiErr = &Error{Status: http.StatusTooManyRequests, Code: errcode.RateLimited, Message: "too many of your requests at once; try again in a second", Err: apiErr.Err}
	}
	var out events.APIGatewayV2HTTPResponse
	if apiErr == nil {
		out = encode(resp.Status, resp.Body)
		// The last resort: the paged routes end their pages well before
		// this, so it answers a bug, never a user's data.
		if n, err := envelopeSize(out); err != nil {
			apiErr = Internal(fmt.Errorf("response envelope: %w", err))
		} else if n > MaxEnvelopeBytes {
			apiErr = Internal(fmt.Errorf("response envelope of %d bytes is over MaxEnvelopeBytes (%d): answered 500 instead", n, MaxEnvelopeBytes))
		}
	}
	if apiErr != nil {
		sum.Status, sum.Code, sum.Err = apiErr.Status, apiErr.Code, apiErr.Err
		sum.Outcome = obs.OutcomeRejected
		if apiErr.Status >= 500 {
			sum.Outcome = obs.OutcomeServerError
		}
		out = encode(apiErr.Status, map[string]any{"error": map[string]string{"code": apiErr.Code, "message": apiErr.Message}})
		if apiErr.Status == http.StatusTooManyRequests {
			out.Headers["Retry-After"] = "1"
		}
		return out, nil
	}
	sum.Status, sum.Outcome = resp.Status, obs.OutcomeOK
	return out, nil
}

func (rt *Router) serve(ctx context.Context, ev events.APIGatewayV2HTTPRequest, sum *obs.Summary) (resp Response, apiErr *Error) {
	defer func() {
		// A bug in one request must answer 500, not kill the sandbox.
		if p := recover(); p != nil {
			apiErr = Internal(fmt.Errorf("panic: %v", p))
		}
	}()
	user := subject(ev)
	if user == "" {
		return Response{}, Errorf(http.StatusUnauthorized, errcode.Unauthorized, "a valid bearer token is required")
	}
	sum.User = user
	h, ok := rt.Routes[ev.RouteKey]
	if !ok {
		return Response{}, Errorf(http.StatusNotFound, errcode.NotFound, "no route %s", ev.RouteKey)
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			return Response{}, Errorf(http.StatusBadRequest, errcode.BadRequest, "body is not valid base64")
		}
		body = b
	}
	if len(body) > MaxBodyBytes {
		return Response{}, Errorf(http.StatusRequestEntityTooLarge, errcode.TooLarge, "body exceeds %d bytes", MaxBodyBytes)
	}
	return h(ctx, &Request{User: user, Event: ev, Body: body})
}

// marshalJSON is the JSON of a response body, and of a part of one when
// a route measures what it adds. It leaves <, > and & as they are: the
// bodies are JSON for programs, never HTML, and json.Marshal's escaping
// (\u003c) only makes them larger, six bytes for one.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// envelopeSize is the size of resp as the function returns it, counted
// as json.Marshal writes it: aws-lambda-go's encoder leaves <, > and & as
// they are (unless told otherwise), json.Marshal escapes them (\u003c), so
// this is never less than what Lambda is given.
func envelopeSize(resp events.APIGatewayV2HTTPResponse) (int, error) {
	b, err := json.Marshal(resp)
	return len(b), err
}

// pageRoom is what the items of a page may take of a response: bytes of
// its body (MaxResponseBytes) and of its envelope (MaxEnvelopeBytes), less
// what the rest of the page takes.
type pageRoom struct{ body, envelope int }

// newPageRoom measures the page without its items: page is the body with
// an empty list and the longest cursor the page could end with.
func newPageRoom(page any) (pageRoom, error) {
	b, err := marshalJSON(page)
	if err != nil {
		return pageRoom{}, err
	}
	env, err := envelopeSize(envelope(http.StatusOK, b))
	if err != nil {
		return pageRoom{}, err
	}
	return pageRoom{body: MaxResponseBytes - len(b), envelope: MaxEnvelopeBytes - env}, nil
}

// size is what item takes of r, in bytes of the body: its JSON and the
// comma before it, or, when that is more, its share of the envelope's
// room, the same bytes escaped again (the escapes of a string are those
// of its parts, so they add up). Items whose sizes add up to at most
// r.body fit both the body and the envelope.
func (r pageRoom) size(item any) (int, error) {
	b, err := marshalJSON(item)
	if err != nil {
		return 0, err
	}
	escaped, err := json.Marshal(string(b))
	if err != nil {
		return 0, err
	}
	body, env := len(b)+1, len(escaped)-2+1 // less the quotes, plus the comma
	// env scaled to the body's room, rounded up.
	return max(body, (env*r.body+r.envelope-1)/r.envelope), nil
}

// subject is the sub claim from API Gateway's JWT authorizer.
func subject(ev events.APIGatewayV2HTTPRequest) string {
	a := ev.RequestContext.Authorizer
	if a == nil || a.JWT == nil {
		return ""
	}
	return a.JWT.Claims["sub"]
}

func encode(status int, body any) events.APIGatewayV2HTTPResponse {
	if body == nil {
		return events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: map[string]string{}}
	}
	b, err := marshalJSON(body)
	if err != nil {
		b = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
		status = http.StatusInternalServerError
	}
	return envelope(status, b)
}

// envelope is the response of status with the JSON body b.
func envelope(status int, b []byte) events.APIGatewayV2HTTPResponse {
	return events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: map[string]string{"Content-Type": "application/json"}, Body: string(b)}
}
