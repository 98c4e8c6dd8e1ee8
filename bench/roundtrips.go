package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/p2/buddy/lambda/dev/wsclient"
)

// storeCall is one DynamoDB call as the store's SDK client made it.
type storeCall struct {
	Op         string // the X-Amz-Target operation, e.g. "TransactWriteItems"
	Start, End time.Time
}

// storeCalls is an http.RoundTripper under the SDK client of the dev
// server's store: it times every DynamoDB call the functions make, from
// the request leaving to its answer read and closed by the SDK, without
// changing what the call does. Timestamps come from this process's clock,
// as do the model stand-in's, so the two can be compared.
type storeCalls struct {
	next http.RoundTripper

	mu       sync.Mutex
	calls    []storeCall
	inFlight int
	last     time.Time // when the last call ended
}

// newStoreCalls wraps the transport the SDK would use by default, so the
// calls go over the same kind of connection pool as without the recorder.
func newStoreCalls() *storeCalls {
	return &storeCalls{next: awshttp.NewBuildableClient().GetTransport()}
}

// client is the HTTP client to give the DynamoDB client.
func (s *storeCalls) client() *http.Client { return &http.Client{Transport: s} }

func (s *storeCalls) RoundTrip(r *http.Request) (*http.Response, error) {
	_, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	s.mu.Lock()
	s.inFlight++
	s.mu.Unlock()
	start := time.Now()
	resp, err := s.next.RoundTrip(r)
	if err != nil {
		s.done(op, start)
		return nil, err
	}
	// The SDK reads the whole answer before it returns to the store; the
	// call ends when it closes the body.
	resp.Body = &timedBody{ReadCloser: resp.Body, end: func() { s.done(op, start) }}
	return resp, nil
}

func (s *storeCalls) done(op string, start time.Time) {
	end := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
	s.calls = append(s.calls, storeCall{Op: op, Start: start, End: end})
	s.last = end
}

// between returns the calls that started at or after from and ended at
// or before to.
func (s *storeCalls) between(from, to time.Time) []storeCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storeCall
	for _, c := range s.calls {
		if !c.Start.Before(from) && !c.End.After(to) {
			out = append(out, c)
		}
	}
	return out
}

// quiet reports whether no call is running and none ended within d.
func (s *storeCalls) quiet(d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight == 0 && time.Since(s.last) >= d
}

// timedBody calls end once, when the body is closed or read to its end.
type timedBody struct {
	io.ReadCloser
	once sync.Once
	end  func()
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.end)
	}
	return n, err
}

func (b *timedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.end)
	return err
}

// sequentialCalls is the longest chain of calls each of which starts after
// the one before it ended: the round trips a caller waited for one after
// the other. Calls that overlap (made side by side) count once. Taking
// calls by earliest end is the classic greedy that finds the longest such
// chain. The chain's operations come back in order.
func sequentialCalls(calls []storeCall) []string {
	calls = slices.Clone(calls)
	slices.SortFunc(calls, func(a, b storeCall) int { return a.End.Compare(b.End) })
	var chain []string
	var end time.Time
	for _, c := range calls {
		if len(chain) == 0 || !c.Start.Before(end) {
			chain = append(chain, c.Op)
			end = c.End
		}
	}
	return chain
}

// roundTripWindow is what quiet waits for before a measured message: no
// store call for this long, so nothing of the run before (a $connect, a
// previous reply's finish) falls into the window.
const roundTripWindow = 20 * time.Millisecond

// Messages of the store round-trip runs.
const (
	kindNewFresh  = "new conversation, a socket's first message"
	kindFollowUp  = "follow-up"
	kindNew       = "new conversation"
	kindNewPrompt = "new conversation with a saved prompt"
)

// roundTripPrompt is the saved prompt of the kindNewPrompt messages.
const roundTripPrompt = "Be kind, and be brief. If you do not know, say so."

// StoreRoundTripsRun has, for each kind of message, the longest chain of
// sequential store calls from the client's send to the model request over
// all samples, and its operations.
type StoreRoundTripsRun struct {
	Max    map[string]int
	Chains map[string][]string
}

// RoundTripsBeforeModel sends, n times, on a fresh socket of a fresh user: a
// message that opens a conversation (the socket's first message, so the
// function resolves the connection in the store), a follow-up in it, a
// message that opens another conversation (the connection now known), and
// one that opens a conversation with a saved prompt (POST /prompts first,
// untimed); and counts the store round trips each made before its model
// request (sequentialCalls). Each message waits for the store to be quiet,
// and for the reply before it to have ended, so only its own calls fall
// between its send and its model request.
func (d *DevServer) RoundTripsBeforeModel(ctx context.Context, n int) (*StoreRoundTripsRun, error) {
	if d.calls == nil {
		return nil, errors.New("the dev server's store is not instrumented")
	}
	run := &StoreRoundTripsRun{Max: map[string]int{}, Chains: map[string][]string{}}
	for i := range n {
		tok, err := d.token(ctx, fmt.Sprintf("bench-trips-%d-%d", i, time.Now().UnixNano()))
		if err != nil {
			return nil, err
		}
		var saved struct {
			ID string `json:"id"`
		}
		if err := d.api(ctx, tok, http.MethodPost, "/prompts", map[string]string{"name": "Bench", "text": roundTripPrompt}, http.StatusCreated, &saved); err != nil {
			return nil, err
		}
		c, err := dialClient(ctx, d.srv.WebSocketURL, tok)
		if err != nil {
			return nil, err
		}
		conv := ""
		for j, kind := range []string{kindNewFresh, kindFollowUp, kindNew, kindNewPrompt} {
			prompt := ""
			switch kind {
			case kindNew:
				conv = ""
			case kindNewPrompt:
				conv, prompt = "", saved.ID
			}
			chain, cid, err := d.countRoundTrips(ctx, c, fmt.Sprintf("trips-%d-%d", i, j), conv, prompt)
			if err != nil {
				c.close()
				return nil, fmt.Errorf("%s: %w", kind, err)
			}
			conv = cid
			if len(chain) > run.Max[kind] || run.Chains[kind] == nil {
				run.Max[kind], run.Chains[kind] = len(chain), chain
			}
		}
		c.close()
	}
	return run, nil
}

// countRoundTrips sends one message (in conversation conv, "" opening
// one, with saved prompt prompt if not "") and returns the chain of store
// calls before its model request and the conversation.
func (d *DevServer) countRoundTrips(ctx context.Context, c *client, id, conv, prompt string) ([]string, string, error) {
	if err := poll(ctx, func() bool { return d.calls.quiet(roundTripWindow) }); err != nil {
		return nil, "", err
	}
	marker := "round-trips " + id
	r, err := c.sendFrame(ctx, wsclient.SendMessage{RequestID: id, ConversationID: conv, PromptID: prompt, Text: directives(ttftReplyTokens, 0, 0) + " " + marker}, nil)
	if err != nil {
		return nil, "", err
	}
	if err := c.wait(ctx, r); err != nil {
		return nil, "", err
	}
	if s := r.Stats(); s.Error != "" || s.Lost != 0 {
		return nil, "", fmt.Errorf("error %q, %d lost frames", s.Error, s.Lost)
	}
	// The summary line is written when the reply job returns: from then
	// on it makes no more calls.
	if err := poll(ctx, func() bool { _, ok := d.summaries.get(id); return ok }); err != nil {
		return nil, "", err
	}
	var received time.Time
	for _, req := range d.srv.StandIn.Requests() {
		if n := len(req.Messages); n > 0 && strings.HasSuffix(strings.TrimSpace(req.Messages[n-1].Content.Text()), marker) {
			received = req.Received
		}
	}
	if received.IsZero() {
		return nil, "", errors.New("the model stand-in has no request for the message")
	}
	st := r.Stats()
	return sequentialCalls(d.calls.between(st.Sent, received)), st.ConversationID, nil
}
