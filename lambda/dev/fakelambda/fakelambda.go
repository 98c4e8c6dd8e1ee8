// Package fakelambda is the Lambda Invoke API on loopback, the one
// stand-in of that protocol: the message function starts its reply job by
// invoking itself asynchronously (InvocationType Event), and the real
// aws-sdk-go-v2 Lambda client (BaseEndpoint set to the server's URL, any
// static credentials) runs against it unchanged. The Lambda Runtime
// Interface Emulator runs a function but does not serve this API, so each
// Event invocation is handed to a callback: the dev server runs its
// in-process message function, the tests and the benchmark forward the
// payload to the function under the emulator.
package fakelambda

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/p2/buddy/lambda/manifest"
)

// ErrUnknownFunction is what a callback returns for a function it does not
// run; the caller gets 404 ResourceNotFoundException.
var ErrUnknownFunction = errors.New("fakelambda: function not found")

// Invocation is one accepted Event invocation.
type Invocation struct {
	// Function is the name in the request path (a name, or an ARN when
	// the caller used one).
	Function string
	// Qualifier is the version or alias asked for, if any.
	Qualifier string
	Payload   []byte
}

// Server answers POST /2015-03-31/functions/{name}/invocations.
type Server struct {
	accept func(ctx context.Context, inv Invocation) error

	mu    sync.Mutex
	calls []Invocation // the last keepCalls accepted
}

// keepCalls bounds the history Invocations returns, so a long `make dev`
// session does not keep every reply job it ever started.
const keepCalls = 64

// New returns a server that hands each Event invocation to accept before
// answering 202, as Lambda answers once the event is queued. accept runs
// on the request's goroutine with the request's context: it must queue
// the work and return, not run it (an invocation that waited for its own
// job would never end). An error from accept fails the call:
// ErrUnknownFunction with 404, anything else with 500 ServiceException.
func New(accept func(ctx context.Context, inv Invocation) error) *Server {
	return &Server{accept: accept}
}

// Invocations returns the last accepted invocations (up to 64), oldest
// first.
func (s *Server) Invocations() []Invocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Invocation(nil), s.calls...)
}

const (
	pathPrefix = "/2015-03-31/functions/"
	pathSuffix = "/invocations"
)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, pathPrefix)
	if ok {
		name, ok = strings.CutSuffix(name, pathSuffix)
	}
	if !ok || name == "" || strings.Contains(name, "/") || r.Method != http.MethodPost {
		writeError(w, http.StatusNotFound, "UnknownOperationException", "the stand-in serves Invoke only")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeError(w, http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
		return
	}
	if t := r.Header.Get("X-Amz-Invocation-Type"); t != "Event" {
		// Buddy only ever invokes asynchronously; a synchronous call
		// would need the function's answer, which the callback does not
		// give.
		writeError(w, http.StatusBadRequest, "InvalidParameterValueException", "the stand-in serves InvocationType Event only, not "+strconv.Quote(t))
		return
	}
	payload, err := io.ReadAll(io.LimitReader(r.Body, manifest.AsyncPayloadLimit+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestContentException", "could not read the request body")
		return
	}
	if len(payload) > manifest.AsyncPayloadLimit {
		writeError(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException", "Request must be smaller than "+strconv.Itoa(manifest.AsyncPayloadLimit)+" bytes for the Event invocation type")
		return
	}
	if len(payload) > 0 && !json.Valid(payload) {
		writeError(w, http.StatusBadRequest, "InvalidRequestContentException", "Could not parse request body into json")
		return
	}
	if n, err := url.PathUnescape(name); err == nil {
		name = n
	}
	inv := Invocation{Function: name, Qualifier: r.URL.Query().Get("Qualifier"), Payload: payload}
	if err := s.accept(r.Context(), inv); err != nil {
		if errors.Is(err, ErrUnknownFunction) {
			writeError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+name)
			return
		}
		writeError(w, http.StatusInternalServerError, "ServiceException", err.Error())
		return
	}
	s.mu.Lock()
	if len(s.calls) == keepCalls {
		s.calls = append(s.calls[:0], s.calls[1:]...)
	}
	s.calls = append(s.calls, inv)
	s.mu.Unlock()
	w.Header().Set("X-Amzn-RequestId", NewRequestID())
	w.WriteHeader(http.StatusAccepted)
}

// writeError answers like Lambda's REST-JSON errors, so the SDK maps the
// error to its typed exception.
func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"Type": "User", "message": msg})
}
