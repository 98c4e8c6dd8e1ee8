// Package fakemodel is an offline stand-in for Claude that speaks the real
// wire protocols: the Messages API (POST /v1/messages, streaming as
// text/event-stream or a plain JSON answer) and Bedrock's InvokeModel and
// InvokeModelWithResponseStream (POST /model/{id}/invoke[-with-response-stream],
// AWS event-stream). Unit tests, handler tests, the local dev server and the
// benchmarks all drive it through the real SDK clients.
//
// Its replies are deterministic and say they come from a stand-in: the
// reported model is "standin/<requested model>" and the text starts with
// "Buddy offline stand-in here." Directives in the last user message change
// what it does (see Plan):
//
//	[[tokens=N]]   reply length in tokens (one word per delta)
//	[[thinking=N]] thinking length in tokens, when the request enables thinking
//	[[rate=N]]     tokens per second, 0 = as fast as possible
//	[[ttft=MS]]    milliseconds before the first delta
//	[[fault=429]]  an error status before the stream (any 4xx/5xx: 429, 529, 500, ...)
//	[[fault=midstream]]  200, some deltas, then an error event
//	[[fault=hang]]       200, message_start, then nothing until the client leaves
//	[[after=N]]    deltas (thinking and text) before a midstream or hang fault
//	[[times=N]]    the fault hits only the first N identical requests (retries then succeed)
//	[[describe]]   reply one line per image or document of the last user turn, in order:
//	               "image <media type> <W>x<H> sha256:<12 hex>" or
//	               "document application/pdf <N> pages sha256:<12 hex>" (lines joined by "\n")
//
// Tokens are counted the same way everywhere: whitespace-separated words of
// the text blocks of system and messages (thinking blocks sent back count for
// nothing, as the API drops them from the context), an image
// ceil(width × height / 750), a PDF 3,000 a page; output tokens are the
// deltas streamed (a word each), thinking included.
//
// The stand-in applies the API's rules for the Claude 4.5 features the
// project uses, and answers 400 invalid_request_error where Claude would:
//
//   - Extended thinking, {"type":"enabled","budget_tokens":N}: N >= 1024 and
//     below max_tokens; temperature only 1, top_k unset, top_p only in
//     0.95..1. The stream then starts with a thinking block (thinking_delta
//     events, one signature_delta) before the text block; thinking takes
//     DefaultThinkingTokens (or [[thinking=N]]) of the budget, never more,
//     and counts toward max_tokens and output_tokens. Thinking blocks sent
//     back in assistant turns must carry the signature they came with.
//   - temperature and top_p together are refused (all models it serves are
//     4.5 models).
//   - Effort, output_config {"effort":"low"|"medium"|"high"}: Opus 4.5 only,
//     with the beta flag effort-2025-11-24 (anthropic-beta header, or
//     anthropic_beta in a Bedrock body). Lower effort shortens the default
//     lengths (medium 3/4, low 1/2); directives still set exact ones.
//   - Images and PDFs (attachments.go, pdf.go): base64 image and document
//     blocks in user turns, with the API's checks (media type against the
//     bytes' magic, base64, 5 MB per image, 8000 px a side or 2000 px past
//     20 images, 100 images, PDFs valid, not encrypted and 100 pages a
//     request) and, for the whole body, 32 MB (413 request_too_large). The
//     Bedrock path takes the same blocks in the same body format and checks
//     them alike.
//   - Prompt caching (cache.go): breakpoints, prefix match with lookback,
//     per-model minimum lengths, 5-minute and 1-hour lifetimes on a clock
//     a test can drive (Options.Now), and usage reported as the API does:
//     input_tokens, cache_read_input_tokens, cache_creation_input_tokens and
//     cache_creation {ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}.
//
// Where the API's error text was seen in public reports it is used verbatim
// ("`max_tokens` must be greater than `thinking.budget_tokens`", "A maximum
// of 4 blocks with cache_control may be provided. Found 5.", "a ttl='1h'
// cache_control block must not come after a ttl='5m' cache_control block",
// "This model does not support the effort parameter.", and the attachment
// errors listed in attachments.go); the rest follow its "field.path:
// problem" style.
package fakemodel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// Options configure a Server. The zero value is a working stand-in.
type Options struct {
	// TokensPerSecond paces replies without a [[rate]] directive; 0 sends
	// them as fast as possible.
	TokensPerSecond float64
	// Tokens is the reply length without a [[tokens]] directive
	// (DefaultTokens when 0).
	Tokens int
	// APIKey, when set, is the only x-api-key accepted; otherwise any
	// non-empty key is.
	APIKey string
	// RetryAfter is the retry-after, in seconds, sent with 429 and 5xx
	// faults. The default 0 lets SDK retries follow at once, which keeps
	// tests fast.
	RetryAfter int
	// Script sees each valid request (n counts requests from 1) with the
	// plan its directives produced, and may change the plan: e.g. "first
	// call 429 with retry-after-ms: 1, second call OK". It runs on the
	// request's goroutine.
	Script func(n int, req Request, p *Plan)
	// Now is the prompt cache's clock (time.Now when nil): a test moves a
	// fakeclock to expire entries instead of waiting five minutes.
	Now func() time.Time
}

// keepRequests is how many recent request bodies a Server keeps, and
// keepBytes how many bytes of bodies at most: requests with attachments are
// large (up to maxBody), and a bench sends many. The last request is kept
// whatever its size.
const (
	keepRequests = 64
	keepBytes    = 64 << 20
)

// maxBody is the largest body accepted: the Messages API's request size
// limit, "32 MB" (API errors docs); a larger one is answered 413
// request_too_large.
const maxBody = 32 << 20

// errClosed ends streams that were still running when the server closed.
var errClosed = errors.New("fakemodel: server closed")

// Server is the stand-in, an http.Handler. Mount it at the root of a
// server (or under a prefix: it matches paths by their end) and point the
// client's base URL at it.
type Server struct {
	opts      Options
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	calls    int
	requests []Request
	sizes    []int // body size of each of requests
	seen     map[[sha256.Size]byte]int
	gone     int
	changed  chan struct{} // closed and replaced whenever gone grows

	cache *promptCache
}

// New returns a stand-in with opts.
func New(opts Options) *Server {
	if opts.Tokens <= 0 {
		opts.Tokens = DefaultTokens
	}
	return &Server{
		opts:    opts,
		closed:  make(chan struct{}),
		seen:    map[[sha256.Size]byte]int{},
		changed: make(chan struct{}),
		cache:   newPromptCache(opts.Now),
	}
}

// Close ends the streams still running (a hang would otherwise hold an
// http.Server's Shutdown until the client gives up).
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closed) }) }

// Calls is the number of requests received, valid or not.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Requests returns the last decoded request bodies, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// LastRequest returns the last decoded request body.
func (s *Server) LastRequest() (Request, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		return Request{}, false
	}
	return s.requests[len(s.requests)-1], true
}

// ClientGone is the number of streams that ended early because the client
// went away: its request context was cancelled, or a write failed.
func (s *Server) ClientGone() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gone
}

// WaitClientGone blocks until ClientGone reaches n or ctx ends. A client
// that cancels learns nothing of when the server noticed; this is how a
// test waits for that without sleeping.
func (s *Server) WaitClientGone(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		gone, changed := s.gone, s.changed
		s.mu.Unlock()
		if gone >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("fakemodel: %d of %d streams saw their client go away: %w", gone, n, ctx.Err())
		}
	}
}

func (s *Server) markGone() {
	s.mu.Lock()
	s.gone++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Server) record(req Request, size int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
	s.sizes = append(s.sizes, size)
	total := 0
	for _, n := range s.sizes {
		total += n
	}
	drop := 0
	for len(s.requests)-drop > 1 && (len(s.requests)-drop > keepRequests || total > keepBytes) {
		total -= s.sizes[drop]
		drop++
	}
	if drop > 0 {
		// Copied, so that the dropped bodies can be collected.
		s.requests = append([]Request(nil), s.requests[drop:]...)
		s.sizes = append([]int(nil), s.sizes[drop:]...)
	}
}

// readBody reads a request body of at most maxBody bytes; tooLarge reports
// a larger one.
func readBody(w http.ResponseWriter, r *http.Request) (body []byte, tooLarge bool, err error) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 {
		// One allocation for a body of announced size, none to regrow.
		buf.Grow(int(min(n, maxBody)) + bytes.MinRead)
	}
	_, err = buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxBody))
	var mbe *http.MaxBytesError
	return buf.Bytes(), errors.As(err, &mbe), err
}

// route tells the API of a path: the Messages API, or Bedrock with the
// model id (escaped in the path, since ids contain ':' and ARNs '/').
func route(escapedPath string) (bedrock bool, model string, stream bool, ok bool) {
	if strings.HasSuffix(escapedPath, "/v1/messages") {
		return false, "", false, true
	}
	i := strings.LastIndex(escapedPath, "/model/")
	if i < 0 {
		return false, "", false, false
	}
	id, action, found := strings.Cut(escapedPath[i+len("/model/"):], "/")
	if !found || (action != "invoke" && action != "invoke-with-response-stream") {
		return false, "", false, false
	}
	model, err := url.PathUnescape(id)
	if err != nil || model == "" {
		return false, "", false, false
	}
	return true, model, action == "invoke-with-response-stream", true
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.mu.Unlock()
	reqID := fmt.Sprintf("req_standin_%06d", n)

	bedrock, model, bedrockStream, ok := route(r.URL.EscapedPath())
	if !ok {
		writeError(w, false, reqID, http.StatusNotFound, "the stand-in serves POST /v1/messages and POST /model/{id}/invoke[-with-response-stream]")
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, bedrock, reqID, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return
	}
	body, tooLarge, err := readBody(w, r)
	switch {
	case tooLarge:
		writeError(w, bedrock, reqID, http.StatusRequestEntityTooLarge, "Request exceeds the maximum allowed number of bytes.")
		return
	case err != nil:
		writeError(w, bedrock, reqID, http.StatusBadRequest, "the request body could not be read")
		return
	}
	var req Request
	decoded := json.Unmarshal(body, &req) == nil && json.Unmarshal(body, &req.Fields) == nil
	if decoded {
		req.Header = r.Header.Clone()
		req.Received = received
		req.Bedrock = bedrock
		if bedrock {
			req.Model, req.Stream = model, bedrockStream
		}
		// Recorded before any check, so a test sees what a rejected
		// request carried too.
		s.record(req, len(body))
	}
	if msg, status := s.authorize(r, bedrock); status != 0 {
		writeError(w, bedrock, reqID, status, msg)
		return
	}
	if !decoded {
		writeError(w, bedrock, reqID, http.StatusBadRequest, "the body is not a valid JSON object")
		return
	}
	if bedrock {
		// Bedrock takes the model from the path and the mode from the
		// action, and rejects either in the body.
		for _, k := range []string{"model", "stream"} {
			if req.Has(k) {
				writeError(w, true, reqID, http.StatusBadRequest, fmt.Sprintf("Malformed input request: extraneous key [%s] is not permitted, please reformat your input and try again.", k))
				return
			}
		}
	}
	if msg := validate(req); msg != "" {
		writeError(w, bedrock, reqID, http.StatusBadRequest, msg)
		return
	}
	atts, msg := checkAttachments(req)
	if msg != "" {
		writeError(w, bedrock, reqID, http.StatusBadRequest, msg)
		return
	}

	budget := req.thinkingBudget()
	plan := Plan{Tokens: scaled(s.opts.Tokens, req.effort()), Rate: s.opts.TokensPerSecond}
	if budget > 0 {
		plan.Thinking = scaled(DefaultThinkingTokens, req.effort())
	}
	said, err := parseDirectives(lastUserText(req.Messages), &plan)
	if err != nil {
		writeError(w, bedrock, reqID, http.StatusBadRequest, err.Error())
		return
	}
	// [[thinking=N]] without thinking in the request is ignored rather
	// than refused: the directive describes the reply, the request decides
	// whether there is thinking at all.
	plan.Thinking = int(min(int64(plan.Thinking), budget))
	if s.opts.Script != nil {
		s.opts.Script(n, req, &plan)
	}
	if plan.Times > 0 && plan.faulty() {
		// SDK retries resend the same body: counting bodies lets a
		// directive fail the first attempts and pass the retry.
		sum := sha256.Sum256(body)
		s.mu.Lock()
		s.seen[sum]++
		over := s.seen[sum] > plan.Times
		s.mu.Unlock()
		if over {
			plan.Status, plan.Midstream, plan.Hang = 0, false, false
		}
	}
	for k, v := range plan.Header {
		w.Header()[http.CanonicalHeaderKey(k)] = v
	}
	if plan.Status != 0 {
		if (plan.Status == http.StatusTooManyRequests || plan.Status >= 500) &&
			w.Header().Get("retry-after") == "" && w.Header().Get("retry-after-ms") == "" {
			w.Header().Set("retry-after", strconv.Itoa(s.opts.RetryAfter))
		}
		writeError(w, bedrock, reqID, plan.Status, defaultMessage(plan.Status))
		return
	}

	// Thinking counts toward max_tokens, and the budget is below it, so
	// the text gets what is left.
	maxTokens := int(min(req.MaxTokens, int64(1<<30)))
	thinking := min(plan.Thinking, maxTokens)
	textRoom := maxTokens - thinking
	var deltas []string
	if plan.Describe {
		deltas = describeDeltas(atts.of(req, lastUser(req.Messages)))
	} else {
		for _, w := range replyWords(said, min(plan.Tokens, textRoom)) {
			deltas = append(deltas, w+" ")
		}
	}
	reply := reply{
		id:        fmt.Sprintf("msg_standin_%06d", n),
		model:     "standin/" + req.Model,
		usage:     s.cache.use(req, atts),
		thinking:  thinkingWords(said, thinking),
		words:     deltas[:min(len(deltas), textRoom)],
		stop:      "end_turn",
		plan:      plan,
		onBedrock: bedrock,
	}
	if (plan.Describe && len(deltas) > textRoom) || (!plan.Describe && plan.Tokens > textRoom) {
		reply.stop = "max_tokens"
	}
	if req.Stream {
		s.stream(w, r, reqID, reply)
		return
	}
	s.answer(w, r, reqID, reply)
}

// authorize checks the headers each API requires.
func (s *Server) authorize(r *http.Request, bedrock bool) (string, int) {
	if bedrock {
		a := r.Header.Get("Authorization")
		if !strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential=") && !strings.HasPrefix(a, "Bearer ") {
			return "Missing Authentication Token: requests must be signed with SigV4", http.StatusForbidden
		}
		return "", 0
	}
	if r.Header.Get("anthropic-version") == "" {
		return "anthropic-version: header is required", http.StatusBadRequest
	}
	key := r.Header.Get("x-api-key")
	switch {
	case key == "":
		return "x-api-key header is required", http.StatusUnauthorized
	case s.opts.APIKey != "" && key != s.opts.APIKey:
		return "invalid x-api-key", http.StatusUnauthorized
	}
	return "", 0
}

// validate applies the API's checks that a caller of this project could
// get wrong; the message is the API's where it matters.
func validate(r Request) string {
	switch {
	case r.Model == "":
		return "model: Field required"
	case !r.Has("max_tokens"):
		return "max_tokens: Field required"
	case r.MaxTokens < 1:
		return "max_tokens: Input should be greater than or equal to 1"
	case len(r.Messages) == 0:
		return "messages: at least one message is required"
	case r.Temperature != nil && r.TopP != nil:
		return "temperature and top_p cannot both be specified for this model. Please use only one."
	case r.Temperature != nil && (*r.Temperature < 0 || *r.Temperature > 1):
		return "temperature: Input should be less than or equal to 1"
	case r.TopP != nil && (*r.TopP < 0 || *r.TopP > 1):
		return "top_p: Input should be less than or equal to 1"
	case r.TopK != nil && *r.TopK < 0:
		return "top_k: Input should be greater than or equal to 0"
	}
	if r.Bedrock && r.AnthropicVersion == "" {
		return "Malformed input request: required key [anthropic_version] not found"
	}
	if msg := validateThinking(r); msg != "" {
		return msg
	}
	for i, m := range r.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
		if len(m.Content) == 0 {
			return fmt.Sprintf("messages.%d: content must not be empty", i)
		}
		for _, b := range m.Content {
			if b.Type == "text" && b.Text == "" {
				return "messages: text content blocks must be non-empty"
			}
		}
	}
	return validateCache(r)
}

// lastUser is the index of the last user message, -1 when there is none.
func lastUser(msgs []Message) int {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return i
		}
	}
	return -1
}

func lastUserText(msgs []Message) string {
	if i := lastUser(msgs); i >= 0 {
		return msgs[i].Content.Text()
	}
	return ""
}

type reply struct {
	id, model string
	// usage is the input side; the output tokens are the words.
	usage    inputUsage
	thinking []string
	// words are the text deltas, each with the space (or newline) that
	// follows it: one token each.
	words     []string
	stop      string
	plan      Plan
	onBedrock bool
}

// outputTokens counts thinking and text: the API bills thinking as output.
func (r reply) outputTokens() int { return len(r.thinking) + len(r.words) }

func (r reply) thinkingText() string { return strings.Join(r.thinking, " ") }

func (r reply) text() string { return strings.Join(r.words, "") }

// wait pauses for d unless the client leaves or the server closes.
func (s *Server) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return errClosed
	}
}

// answer is the non-streaming reply: one JSON message.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, reqID string, rep reply) {
	p := rep.plan
	if p.Hang {
		if err := s.wait(r.Context(), 1<<62); !errors.Is(err, errClosed) {
			s.markGone()
		}
		return
	}
	if p.Midstream {
		// No stream to break: fail the way an overloaded API does.
		writeError(w, rep.onBedrock, reqID, 529, defaultMessage(529))
		return
	}
	pace := time.Duration(0)
	if p.Rate > 0 {
		pace = time.Duration(float64(rep.outputTokens()) / p.Rate * float64(time.Second))
	}
	if err := s.wait(r.Context(), p.TTFT+pace); err != nil {
		if !errors.Is(err, errClosed) {
			s.markGone()
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if rep.onBedrock {
		w.Header().Set("x-amzn-RequestId", reqID)
	} else {
		w.Header().Set("request-id", reqID)
	}
	var content []map[string]string
	if len(rep.thinking) > 0 {
		content = append(content, map[string]string{"type": "thinking", "thinking": rep.thinkingText(), "signature": signature(rep.thinkingText())})
	}
	content = append(content, map[string]string{"type": "text", "text": rep.text()})
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id":            rep.id,
		"type":          "message",
		"role":          "assistant",
		"model":         rep.model,
		"content":       content,
		"stop_reason":   rep.stop,
		"stop_sequence": nil,
		"usage":         rep.usage.wire(rep.outputTokens()),
	})
}

// pingEvery is how many deltas pass between two pings.
const pingEvery = 16

// stream is the streaming reply.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, reqID string, rep reply) {
	rc := http.NewResponseController(w)
	var f framer
	if rep.onBedrock {
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		w.Header().Set("x-amzn-RequestId", reqID)
		w.Header().Set("X-Amzn-Bedrock-Content-Type", "application/json")
		f = eventStreamFramer{w: w, rc: rc, enc: eventstream.NewEncoder()}
	} else {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("request-id", reqID)
		f = sseFramer{w: w, rc: rc}
	}
	w.WriteHeader(http.StatusOK)
	var err error
	if rep.plan.Raw != "" {
		if _, err = io.Copy(w, bytes.NewReader([]byte(rep.plan.Raw))); err == nil {
			err = rc.Flush()
		}
	} else {
		err = s.play(r.Context(), f, rep)
	}
	if err != nil && !errors.Is(err, errClosed) {
		s.markGone()
	}
}

// play sends the events of rep; an error means the stream was cut short.
// With thinking, block 0 is the thinking block (thinking_delta events, then
// one signature_delta) and block 1 the text; without, block 0 is the text.
func (s *Server) play(ctx context.Context, f framer, rep reply) error {
	p := rep.plan
	faultAt := -1
	if p.Midstream || p.Hang {
		faultAt = min(p.After, rep.outputTokens())
	}
	strike := func() error {
		if p.Midstream {
			return f.fail()
		}
		return s.wait(ctx, 1<<62)
	}

	err := f.event("message_start", map[string]any{
		"type": "message_start",
		"message": map[string]any{
			"id": rep.id, "type": "message", "role": "assistant", "model": rep.model,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil,
			"usage": rep.usage.wire(1),
		},
	})
	if err != nil {
		return err
	}
	if faultAt == 0 {
		return strike()
	}
	var pace time.Duration
	if p.Rate > 0 {
		pace = time.Duration(float64(time.Second) / p.Rate)
	}
	// sent counts content deltas over both blocks: pacing, pings and
	// faults follow the whole reply, not each block.
	sent := 0
	// block streams one content block; delta builds the i-th delta.
	block := func(index int, start map[string]string, words []string, delta func(i int, word string) map[string]string, end func() error) error {
		if err := f.event("content_block_start", map[string]any{
			"type": "content_block_start", "index": index, "content_block": start,
		}); err != nil {
			return err
		}
		if index == 0 {
			if err := f.event("ping", map[string]string{"type": "ping"}); err != nil {
				return err
			}
			if err := s.wait(ctx, p.TTFT); err != nil {
				return err
			}
		}
		for i, word := range words {
			if sent > 0 {
				if err := s.wait(ctx, pace); err != nil {
					return err
				}
			}
			if err := f.event("content_block_delta", map[string]any{
				"type": "content_block_delta", "index": index, "delta": delta(i, word),
			}); err != nil {
				return err
			}
			sent++
			if sent == faultAt {
				return strike()
			}
			if sent%pingEvery == 0 {
				if err := f.event("ping", map[string]string{"type": "ping"}); err != nil {
					return err
				}
			}
		}
		if end != nil {
			if err := end(); err != nil {
				return err
			}
		}
		return f.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": index})
	}

	// A strike returns nil after a midstream error event: the stream is
	// over either way, so stop at the first block that ended early.
	index := 0
	if len(rep.thinking) > 0 {
		err := block(0, map[string]string{"type": "thinking", "thinking": "", "signature": ""}, rep.thinking,
			func(i int, word string) map[string]string {
				if i > 0 {
					word = " " + word
				}
				return map[string]string{"type": "thinking_delta", "thinking": word}
			},
			func() error {
				return f.event("content_block_delta", map[string]any{
					"type": "content_block_delta", "index": 0,
					"delta": map[string]string{"type": "signature_delta", "signature": signature(rep.thinkingText())},
				})
			})
		if err != nil || sent == faultAt {
			return err
		}
		index = 1
	}
	err = block(index, map[string]string{"type": "text", "text": ""}, rep.words,
		func(_ int, word string) map[string]string {
			return map[string]string{"type": "text_delta", "text": word}
		},
		nil)
	if err != nil || sent == faultAt {
		return err
	}
	if err := f.event("message_delta", map[string]any{
		"type":  "message_delta",
		"delta": map[string]any{"stop_reason": rep.stop, "stop_sequence": nil},
		// The API repeats the input side here; output_tokens is the
		// total so far, thinking included.
		"usage": map[string]int{
			"input_tokens":                rep.usage.InputTokens,
			"cache_creation_input_tokens": rep.usage.CacheCreationInputTokens,
			"cache_read_input_tokens":     rep.usage.CacheReadInputTokens,
			"output_tokens":               rep.outputTokens(),
		},
	}); err != nil {
		return err
	}
	return f.event("message_stop", map[string]string{"type": "message_stop"})
}
