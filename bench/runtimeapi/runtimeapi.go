// Package runtimeapi is a local stand-in of the AWS Lambda Runtime API
// (2018-06-01), enough to run an unmodified function binary or a managed
// runtime's loop outside Lambda: the official emulator cannot be installed
// here. It hands out queued events on GET /invocation/next and collects
// what the function posts back.
//
// The time of the first GET /next is the moment the function finished its
// init: every runtime client asks for work only after the handler module is
// loaded and its set-up has run. The cold start benchmark measures up to it.
package runtimeapi

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Prefix is the path prefix of every Runtime API call.
const Prefix = "/2018-06-01/runtime/"

// maxBody bounds what a function may post (Lambda's synchronous response
// limit is 6 MB).
const maxBody = 6 << 20

// Invocation is one event to hand to the function.
type Invocation struct {
	// ID is the request id; one is generated when empty.
	ID      string
	Payload []byte
	// Timeout sets the deadline header; 15 minutes when zero.
	Timeout time.Duration
}

// Result is what the function posted for one invocation.
type Result struct {
	ID string
	// Err is true for a post to /error.
	Err  bool
	Body []byte
	At   time.Time
}

// Server is one Runtime API endpoint, for one execution environment.
type Server struct {
	// Addr is the host:port to put in AWS_LAMBDA_RUNTIME_API.
	Addr string
	// FunctionARN goes into the invoked-function-arn header.
	FunctionARN string

	ln      net.Listener
	srv     *http.Server
	queue   chan Invocation
	results chan Result
	initErr chan []byte
	closed  chan struct{}

	readyOnce sync.Once
	ready     chan struct{}
	readyAt   time.Time
	closeOnce sync.Once
}

// Start listens on a free loopback port. queue bounds how many invocations
// may wait for the function.
func Start(functionARN string, queue int) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		Addr:        ln.Addr().String(),
		FunctionARN: functionARN,
		ln:          ln,
		queue:       make(chan Invocation, queue),
		// Results and init errors are buffered so a function never blocks
		// on a harness that stopped reading.
		results: make(chan Result, queue+1),
		initErr: make(chan []byte, 1),
		closed:  make(chan struct{}),
		ready:   make(chan struct{}),
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Enqueue adds an invocation; it fails rather than block when the queue is
// full.
func (s *Server) Enqueue(inv Invocation) (string, error) {
	if inv.ID == "" {
		inv.ID = NewID()
	}
	select {
	case s.queue <- inv:
		return inv.ID, nil
	default:
		return "", errors.New("runtimeapi: invocation queue full")
	}
}

// Ready is closed at the first GET /next.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// ReadyAt is when the first GET /next arrived; valid once Ready is closed.
func (s *Server) ReadyAt() time.Time {
	<-s.ready
	return s.readyAt
}

// Results delivers the function's responses and errors, in arrival order.
func (s *Server) Results() <-chan Result { return s.results }

// InitErrors delivers the body of a POST /init/error.
func (s *Server) InitErrors() <-chan []byte { return s.initErr }

// Close stops the server and releases any GET /next still waiting.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return s.srv.Close()
}

// ServeHTTP implements the four Runtime API calls.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch {
	case r.Method == http.MethodGet && route == "invocation/next":
		s.next(w, r)
	case r.Method == http.MethodPost && route == "init/error":
		body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
		select {
		case s.initErr <- body:
		default:
		}
		accepted(w)
	case r.Method == http.MethodPost && strings.HasPrefix(route, "invocation/"):
		id, kind, ok := strings.Cut(strings.TrimPrefix(route, "invocation/"), "/")
		if !ok || (kind != "response" && kind != "error") || id == "" {
			http.NotFound(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			http.Error(w, `{"errorMessage":"response too large or unreadable"}`, http.StatusRequestEntityTooLarge)
			return
		}
		select {
		case s.results <- Result{ID: id, Err: kind == "error", Body: body, At: time.Now()}:
		default:
			// More results than invocations: the function misbehaves; the
			// harness sees it through a missing or unexpected id.
		}
		accepted(w)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	// The timestamp is taken before anything else so the handler's own
	// cost is not charged to the function.
	now := time.Now()
	s.readyOnce.Do(func() {
		s.readyAt = now
		close(s.ready)
	})
	var inv Invocation
	select {
	case inv = <-s.queue:
	case <-r.Context().Done():
		return
	case <-s.closed:
		http.Error(w, "runtime API closed", http.StatusGone)
		return
	}
	timeout := inv.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Minute
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.ID)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(timeout).UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", s.FunctionARN)
	h.Set("Lambda-Runtime-Trace-Id", fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", time.Now().Unix(), NewID()[:24], NewID()[:16]))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.Payload)
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "OK"})
}

// NewID returns 32 random hex digits.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
