// Package fakeconnections is the HTTP side of API Gateway's @connections
// management API (PostToConnection, GetConnection, DeleteConnection), the
// one stand-in of that protocol for the tests, the dev server and the
// benchmark. No API Gateway emulator can be installed here, so the real
// apigatewaymanagementapi client (BaseEndpoint set to the server's URL plus
// the stage, any static credentials) runs against it unchanged.
//
// The Handler answers as API Gateway does: POST, GET and DELETE on
// .../@connections/{id}, a SigV4 Authorization header required, 410
// GoneException for a connection that is not open, 413
// PayloadTooLargeException past 128 KB, and errors in the AWS REST-JSON
// shape the SDK maps to its typed exceptions. Where the frames go is a
// Connections: the dev server's WebSocket gateway with its live sockets,
// or a Recorder that keeps every post for a test or the benchmark.
package fakeconnections

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/p2/buddy/lambda/wsapi"
)

// ErrGone is what a Connections returns for a connection that is not open;
// the Handler answers it with 410 GoneException.
var ErrGone = errors.New("fakeconnections: connection gone")

// Info is what GetConnection reports about an open connection.
type Info struct {
	ConnectedAt, LastActiveAt time.Time
	SourceIP, UserAgent       string
}

// Connections is where the Handler delivers: an implementation returns
// ErrGone (possibly wrapped) for a connection that is not open.
type Connections interface {
	// Post delivers data to the connection; it returns once the data is
	// on its way, as API Gateway answers a post.
	Post(ctx context.Context, connectionID string, data []byte) error
	// Get describes the connection.
	Get(ctx context.Context, connectionID string) (Info, error)
	// Delete closes the connection from the server side.
	Delete(ctx context.Context, connectionID string) error
}

// Stats counts what the Handler answered.
type Stats struct {
	// Posts delivered; Gone posts answered 410; TooLarge posts answered
	// 413.
	Posts, Gone, TooLarge int64
}

// Handler serves the @connections API over conns. Mount it where the
// stage's endpoint points: it reads the connection id from the path's
// last "/@connections/{id}", whatever comes before (the stage).
type Handler struct {
	conns                 Connections
	posts, gone, tooLarge atomic.Int64
}

// NewHandler serves conns.
func NewHandler(conns Connections) *Handler { return &Handler{conns: conns} }

// Stats returns the counters since NewHandler.
func (h *Handler) Stats() Stats {
	return Stats{Posts: h.posts.Load(), Gone: h.gone.Load(), TooLarge: h.tooLarge.Load()}
}

const segment = "/@connections/"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The id is one escaped path segment: API Gateway ids are base64-like
	// and may hold '/' or '+', which the SDK escapes. Reading the escaped
	// path keeps such an id whole.
	path := r.URL.EscapedPath()
	raw := ""
	if i := strings.LastIndex(path, segment); i >= 0 {
		raw = path[i+len(segment):]
	}
	id, err := url.PathUnescape(raw)
	if err != nil || id == "" || strings.Contains(raw, "/") ||
		(r.Method != http.MethodPost && r.Method != http.MethodGet && r.Method != http.MethodDelete) {
		// What execute-api answers for a path or method no route serves.
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden"})
		return
	}
	// The SDK signs its calls with SigV4; any signature is accepted here,
	// an unsigned request is not, as in AWS.
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeAWSError(w, http.StatusForbidden, "ForbiddenException", "Missing Authentication Token")
		return
	}
	switch r.Method {
	case http.MethodPost:
		h.post(w, r, id)
	case http.MethodGet:
		info, err := h.conns.Get(r.Context(), id)
		if err != nil {
			h.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"connectedAt":  info.ConnectedAt.UTC().Format(time.RFC3339Nano),
			"lastActiveAt": info.LastActiveAt.UTC().Format(time.RFC3339Nano),
			"identity":     map[string]string{"sourceIp": info.SourceIP, "userAgent": info.UserAgent},
		})
	case http.MethodDelete:
		if err := h.conns.Delete(r.Context(), id); err != nil {
			h.fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// post is PostToConnection: 200 once the data is on its way to the
// client, 410 for a connection that is not open, 413 past 128 KB.
func (h *Handler) post(w http.ResponseWriter, r *http.Request, id string) {
	data, err := io.ReadAll(io.LimitReader(r.Body, wsapi.MaxMessageBytes+1))
	if err != nil {
		writeAWSError(w, http.StatusBadRequest, "BadRequestException", "could not read the request body")
		return
	}
	if len(data) > wsapi.MaxMessageBytes {
		h.tooLarge.Add(1)
		writeAWSError(w, http.StatusRequestEntityTooLarge, "PayloadTooLargeException", "Request entity too large")
		return
	}
	if err := h.conns.Post(r.Context(), id, data); err != nil {
		if errors.Is(err, ErrGone) {
			h.gone.Add(1)
		}
		h.fail(w, err)
		return
	}
	h.posts.Add(1)
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrGone) {
		writeAWSError(w, http.StatusGone, "GoneException", "")
		return
	}
	writeAWSError(w, http.StatusInternalServerError, "InternalServerErrorException", err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeAWSError answers like an AWS REST-JSON service, so the SDK maps the
// error to its typed exception (GoneException, PayloadTooLargeException).
// API Gateway's GoneException carries a null message.
func writeAWSError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("X-Amzn-ErrorType", typ)
	body := map[string]any{"message": msg}
	if msg == "" {
		body["message"] = nil
	}
	writeJSON(w, status, body)
}
