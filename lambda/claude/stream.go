package claude

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
	"github.com/p2/buddy/lambda/models"
	"github.com/p2/buddy/lambda/tokens"
)

// Defaults of the tuning options shared by both providers.
const (
	// DefaultMaxRetries is the SDK's own default: 429, 529 and 5xx answered
	// before the stream starts are retried this many times.
	DefaultMaxRetries = 2
	// DefaultIdleTimeout ends a stream that sent nothing, not even a ping,
	// for this long. The API pings every few seconds while the model thinks,
	// so a minute of silence is a dead connection, not a slow model.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxRetryWait bounds how long a call sleeps before a retry. The
	// SDK sleeps for whatever retry-after asks, uncapped; a reply job that
	// sleeps for minutes only burns Lambda time while the user waits, so a
	// longer request makes the call fail at once as rate limited.
	DefaultMaxRetryWait = 10 * time.Second
)

// tuning holds the options both providers share.
type tuning struct {
	httpClient   *http.Client
	maxRetries   int
	idleTimeout  time.Duration
	maxRetryWait time.Duration
}

func (t tuning) withDefaults() tuning {
	switch {
	case t.maxRetries == 0:
		t.maxRetries = DefaultMaxRetries
	case t.maxRetries < 0:
		t.maxRetries = 0
	}
	if t.idleTimeout <= 0 {
		t.idleTimeout = DefaultIdleTimeout
	}
	if t.maxRetryWait <= 0 {
		t.maxRetryWait = DefaultMaxRetryWait
	}
	// The idle watchdog stays armed while the SDK sleeps between attempts
	// (it cannot tell a retried error response from a final one), so a wait
	// as long as the idle timeout would be reported as a timeout.
	if t.maxRetryWait >= t.idleTimeout {
		t.maxRetryWait = t.idleTimeout / 2
	}
	return t
}

// streamer is the one implementation of Stream behind both providers; they
// differ only in the client options (endpoint, authentication), in the
// model id and in whether an API key is sent per call.
type streamer struct {
	client anthropic.Client
	// provider names the upstream in errors: providerAnthropic or
	// providerBedrock, whose feature sets differ.
	provider string
	// keys is nil for Bedrock, which signs requests with AWS credentials.
	keys    KeySource
	modelID func(string) string
	idle    time.Duration
}

// newStreamer builds the SDK client. provider options come last so that our
// middleware runs outermost and sees Anthropic-shaped requests and SSE
// responses on both providers.
func newStreamer(t tuning, name string, keys KeySource, modelID func(string) string, provider ...option.RequestOption) *streamer {
	t = t.withDefaults()
	opts := []option.RequestOption{
		// Credentials, base URL and profiles come from our configuration
		// only; the SDK would otherwise read ANTHROPIC_API_KEY, config files
		// under $HOME and more.
		option.WithoutEnvironmentDefaults(),
		option.WithMaxRetries(t.maxRetries),
		option.WithMiddleware(watchMiddleware(t.maxRetryWait)),
	}
	if t.httpClient != nil {
		opts = append(opts, option.WithHTTPClient(t.httpClient))
	}
	opts = append(opts, provider...)
	return &streamer{
		client:   anthropic.NewClient(opts...),
		provider: name,
		keys:     keys,
		modelID:  modelID,
		idle:     t.idleTimeout,
	}
}

// stream runs one model call. A 401 before the stream (the key was rotated
// since we cached it) refreshes the key and tries exactly once more.
func (s *streamer) stream(ctx context.Context, req Request, h Handler) (Result, error) {
	c, err := prepare(req, s.provider)
	if err != nil {
		return Result{}, &Error{Kind: KindBadRequest, Err: err}
	}
	params := c.params
	if s.modelID != nil {
		params.Model = anthropic.Model(s.modelID(req.Model))
	}
	res := Result{Dropped: c.dropped}
	for attempt := 1; ; attempt++ {
		opts := append([]option.RequestOption(nil), c.opts...)
		if s.keys != nil {
			key, err := s.keys.Key(ctx)
			if err != nil {
				return res, &Error{Kind: KindUpstream, Err: fmt.Errorf("API key: %w", err)}
			}
			opts = append(opts, option.WithAPIKey(key))
		}
		err := s.once(ctx, params, c.cacheTTL, h, &res, opts...)
		var e *Error
		if attempt == 1 && s.keys != nil && errors.As(err, &e) && e.Status == http.StatusUnauthorized && !e.Started {
			s.keys.Invalidate()
			continue
		}
		return res, err
	}
}

// once makes one call (the SDK's retries included) and feeds h.
func (s *streamer) once(ctx context.Context, params anthropic.MessageNewParams, cacheTTL string, h Handler, res *Result, opts ...option.RequestOption) error {
	callCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := &watchdog{idle: s.idle, timer: time.AfterFunc(s.idle, func() { cancel(ErrIdleTimeout) })}
	defer wd.timer.Stop()

	stream := s.client.Messages.NewStreaming(context.WithValue(callCtx, watchdogKey{}, wd), params, opts...)
	defer stream.Close()

	r := &reading{h: h, res: res, cacheTTL: cacheTTL}
	r.th, _ = h.(ThinkingHandler)
	for stream.Next() {
		if callCtx.Err() != nil {
			// Events already buffered must not reach h once the caller
			// gave up or the watchdog fired.
			break
		}
		// Time spent in h is ours, not upstream silence.
		wd.timer.Stop()
		if err := r.feed(ctx, stream.Current()); err != nil {
			// Cancel before returning so that the deferred Close tears the
			// connection down instead of reading on: every further token
			// would be paid for and thrown away.
			cancel(err)
			return fmt.Errorf("claude: stream handler: %w", err)
		}
		wd.kick()
	}
	return r.end(ctx, callCtx, stream.Err())
}

// reading follows the events of one call: the message the SDK accumulates
// from them, and how far h has been fed.
type reading struct {
	h Handler
	// th is h when it takes thinking, else nil.
	th      ThinkingHandler
	res     *Result
	message anthropic.Message
	// cacheTTL is the request's breakpoint lifetime, "" without caching.
	cacheTTL string
	// started: OnStart was called; sent: OnText or OnThinking was;
	// stopped: message_stop arrived.
	started, sent, stopped bool
}

// feed hands one event to h and keeps the totals. Events of types this
// code does not know (pings, future additions) are skipped. The error is
// h's.
func (r *reading) feed(ctx context.Context, ev anthropic.MessageStreamEventUnion) error {
	switch e := ev.AsAny().(type) {
	case anthropic.MessageStartEvent:
		r.accumulate(ev)
		if !r.started {
			r.started = true
			return r.h.OnStart(ctx, r.res.Model)
		}
	case anthropic.ContentBlockDeltaEvent:
		switch d := e.Delta.AsAny().(type) {
		case anthropic.TextDelta:
			if d.Text != "" {
				r.sent = true
				return r.h.OnText(ctx, d.Text)
			}
		case anthropic.ThinkingDelta:
			if d.Thinking != "" && r.th != nil {
				r.sent = true
				return r.th.OnThinking(ctx, d.Thinking)
			}
		case anthropic.SignatureDelta:
			// One signature_delta ends the thinking block; appending keeps
			// a signature that arrives in pieces whole.
			r.res.ThinkingSignature += d.Signature
		}
	case anthropic.MessageDeltaEvent:
		r.accumulate(ev)
	case anthropic.MessageStopEvent:
		r.stopped = true
	}
	return nil
}

// accumulate folds a message-level event (message_start, message_delta)
// into the message and copies its totals to the Result, so the Result
// holds what was counted so far even if the stream breaks off next.
func (r *reading) accumulate(ev anthropic.MessageStreamEventUnion) {
	// Accumulate fails only on a content block event it cannot place, and
	// it is given none: text reaches h straight from the event, and
	// accumulating it as well would rebuild the whole reply by string
	// concatenation, once per delta.
	_ = r.message.Accumulate(ev)
	m := &r.message
	r.res.Model = string(m.Model)
	r.res.StopReason = string(m.StopReason)
	u := tokens.Usage{
		InputTokens:              counted(m.Usage.InputTokens, r.res.Usage.InputTokens),
		OutputTokens:             m.Usage.OutputTokens,
		CacheReadInputTokens:     counted(m.Usage.CacheReadInputTokens, r.res.Usage.CacheReadInputTokens),
		CacheCreationInputTokens: counted(m.Usage.CacheCreationInputTokens, r.res.Usage.CacheCreationInputTokens),
		// message_delta carries no cache_creation split, so the
		// accumulated message keeps message_start's.
		CacheWrite5mInputTokens: m.Usage.CacheCreation.Ephemeral5mInputTokens,
		CacheWrite1hInputTokens: m.Usage.CacheCreation.Ephemeral1hInputTokens,
	}
	if !m.Usage.JSON.CacheCreation.Valid() && u.CacheCreationInputTokens > 0 {
		// An upstream that reports the total without the split (the
		// field came later than the total, and Bedrock's docs do not
		// promise it): every breakpoint of the request has the same
		// lifetime, so the whole write is of that lifetime. Without this
		// the write would be priced as neither.
		switch r.cacheTTL {
		case "1h":
			u.CacheWrite1hInputTokens = u.CacheCreationInputTokens
		case "5m":
			u.CacheWrite5mInputTokens = u.CacheCreationInputTokens
		}
	}
	r.res.Usage = u
}

// counted is an input-side count: n, or prev when n is zero. The SDK lets
// any count a message_delta carries replace the total, and some upstreams
// send zero there for an input or cache count they do not repeat. The
// input of a reply cannot shrink to nothing, so such a zero means "not
// repeated" and message_start's count stands.
func counted(n, prev int64) int64 {
	if n == 0 {
		return prev
	}
	return n
}

// end settles the call once the events ran out. streamErr is the stream's
// own error; parent is the caller's context, call the call's.
func (r *reading) end(parent, call context.Context, streamErr error) error {
	err := streamErr
	if err == nil && call.Err() != nil {
		err = context.Cause(call)
	}
	if err == nil && !r.stopped {
		// A connection cut between events ends the body cleanly; without
		// message_stop the reply is incomplete and must not pass as whole.
		err = io.ErrUnexpectedEOF
		if !r.started {
			err = errors.New("stream ended before message_start")
		}
	}
	if err == nil {
		return nil
	}
	return classify(parent, call, err, r.sent)
}

// classify turns a failed call into an *Error. parent is the caller's
// context, call the context of the call (cancelled by the watchdog).
func classify(parent, call context.Context, err error, sent bool) error {
	if parent.Err() != nil {
		// The caller gave up (client gone, invocation deadline): say why
		// with the cause, not with the SDK's bare "context canceled".
		return &Error{Kind: KindUpstream, Started: sent, Err: context.Cause(parent)}
	}
	if errors.Is(context.Cause(call), ErrIdleTimeout) {
		return &Error{Kind: KindUpstream, Started: sent, Err: ErrIdleTimeout}
	}
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) {
		return &Error{Kind: KindUpstream, Started: sent, Err: err}
	}
	if apiErr.StatusCode < 400 {
		// An error event after the 200: the status says nothing, the type
		// does. Bedrock reports its exceptions under their AWS names.
		kind := KindUpstream
		switch strings.ToLower(string(apiErr.Type())) {
		case "overloaded_error", "rate_limit_error", "throttlingexception":
			kind = KindRateLimited
		}
		return &Error{Kind: kind, Started: sent, Err: apiErr}
	}
	return &Error{Kind: kindOfStatus(apiErr.StatusCode), Status: apiErr.StatusCode, Err: apiErr}
}

// kindOfStatus classifies an error status answered before the stream, after
// the SDK's retries.
func kindOfStatus(status int) Kind {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return KindBadRequest
	case http.StatusTooManyRequests, 529:
		return KindRateLimited
	default:
		// 401/403/404 are our configuration's fault, 5xx the upstream's:
		// either way the user's request was fine.
		return KindUpstream
	}
}

// call is a Request translated for the SDK: the body, the options the call
// needs besides it, and what was left out of it.
type call struct {
	params anthropic.MessageNewParams
	// opts carry what the body cannot: the effort beta flag.
	opts []option.RequestOption
	// dropped names the sampling fields thinking forced out.
	dropped []string
	// cacheTTL is the lifetime of the breakpoints, "" when caching is off.
	cacheTTL string
}

// Provider names, as UnsupportedError reports them.
const (
	providerAnthropic = "anthropic"
	providerBedrock   = "bedrock"
)

// prepare translates a Request for provider, or says why it cannot be sent.
// Absent sampling fields stay absent, so the model's defaults apply.
func prepare(req Request, provider string) (call, error) {
	if req.Temperature != nil && req.TopP != nil {
		return call{}, errors.New("temperature and top_p cannot both be set: Claude 4.5 models reject the pair; set one")
	}
	info, known := models.Lookup(req.Model)
	unsupported := func(feature string) error {
		return &UnsupportedError{Provider: provider, Model: req.Model, Feature: feature}
	}
	c := call{params: anthropic.MessageNewParams{
		Model:     anthropic.Model(req.Model),
		MaxTokens: req.MaxTokens,
		Messages:  make([]anthropic.MessageParam, 0, len(req.Turns)),
	}}
	p := &c.params

	temperature, topP, topK := req.Temperature, req.TopP, req.TopK
	switch b := req.ThinkingBudget; {
	case b == 0:
	case b < models.MinThinkingBudget:
		return call{}, fmt.Errorf("thinking budget %d is below the minimum of %d tokens", b, models.MinThinkingBudget)
	case b >= req.MaxTokens:
		return call{}, fmt.Errorf("thinking budget %d must be below max tokens %d: thinking counts toward them", b, req.MaxTokens)
	default:
		p.Thinking = anthropic.ThinkingConfigParamOfEnabled(b)
		// The API refuses these with thinking on (it samples thinking at
		// temperature 1 without top_k, and lets top_p narrow only to
		// 0.95). They come from the deployment's configuration, not from
		// the user, so they give way instead of failing every thinking
		// request; Dropped tells the caller.
		if temperature != nil && *temperature != 1 {
			temperature = nil
			c.dropped = append(c.dropped, "temperature")
		}
		if topK > 0 {
			topK = 0
			c.dropped = append(c.dropped, "top_k")
		}
		if topP != nil && (*topP < 0.95 || *topP > 1) {
			topP = nil
			c.dropped = append(c.dropped, "top_p")
		}
	}
	if temperature != nil {
		p.Temperature = anthropic.Float(*temperature)
	}
	if topP != nil {
		p.TopP = anthropic.Float(*topP)
	}
	if topK > 0 {
		p.TopK = anthropic.Int(topK)
	}

	switch req.Effort {
	case "":
	case "low", "medium", "high":
		if !info.Effort {
			return call{}, unsupported("effort")
		}
		// The SDK has the field typed; Opus 4.5 still wants the beta flag
		// with it, which the SDK does not add by itself.
		p.OutputConfig = anthropic.OutputConfigParam{Effort: anthropic.OutputConfigEffort(req.Effort)}
		c.opts = append(c.opts, option.WithHeaderAdd("anthropic-beta", models.EffortBeta))
	default:
		return call{}, fmt.Errorf("effort %q is not one of low, medium, high", req.Effort)
	}

	// The constructor sets type "ephemeral": a zero value would be
	// omitted from the body altogether.
	cc := anthropic.NewCacheControlEphemeralParam()
	switch req.CacheTTL {
	case "", "off":
	case "5m":
		// Sent without ttl: 5 minutes is the default on both providers,
		// and the bare form is the one every Bedrock model takes.
		c.cacheTTL = req.CacheTTL
	case "1h":
		if provider == providerBedrock && !info.BedrockCache1h {
			return call{}, unsupported("1h cache TTL")
		}
		c.cacheTTL = req.CacheTTL
		cc.TTL = anthropic.CacheControlEphemeralTTLTTL1h
	default:
		return call{}, fmt.Errorf("cache TTL %q is not one of 5m, 1h, off", req.CacheTTL)
	}
	minCache := int64(models.DefaultMinCacheTokens)
	if known {
		minCache = info.MinCacheTokens
	}
	// breakpoint reports whether a prefix of about prefix tokens is worth
	// a breakpoint.
	breakpoint := func(prefix int64) bool { return c.cacheTTL != "" && prefix >= minCache }

	// Breakpoints go on the system prompt, which stays the same across a
	// conversation, and on the newest user turn, so that the next turn
	// reads everything before its own new messages from the cache (the API
	// looks back from a breakpoint for the longest cached prefix).
	var prefix int64
	if req.System != "" {
		prefix += estimateTokens(req.System)
		block := anthropic.TextBlockParam{Text: req.System}
		if breakpoint(prefix) {
			block.CacheControl = cc
		}
		p.System = []anthropic.TextBlockParam{block}
	}
	lastUser := -1
	for i, t := range req.Turns {
		if t.Role == "user" {
			lastUser = i
		}
	}
	for i, t := range req.Turns {
		content, tokens, err := turnContent(t)
		if err != nil {
			return call{}, fmt.Errorf("turn %d: %w", i, err)
		}
		prefix += tokens
		// On the turn's last block: the attachments before it, often
		// most of the prefix, are cached with it.
		if i == lastUser && breakpoint(prefix) {
			*content[len(content)-1].GetCacheControl() = cc
		}
		switch t.Role {
		case "user":
			p.Messages = append(p.Messages, anthropic.NewUserMessage(content...))
		case "assistant":
			if len(t.Attachments) > 0 {
				return call{}, fmt.Errorf("turn %d: an assistant turn carries no attachments", i)
			}
			p.Messages = append(p.Messages, anthropic.NewAssistantMessage(content...))
		default:
			return call{}, fmt.Errorf("turn %d: role %q is neither user nor assistant", i, t.Role)
		}
	}
	return c, nil
}

// turnContent is a turn's blocks, its attachments first (as the API
// advises: an image or document before the question about it), then its
// text when it has any; and the tokens they count.
func turnContent(t Turn) ([]anthropic.ContentBlockParamUnion, int64, error) {
	var (
		blocks []anthropic.ContentBlockParamUnion
		tokens int64
	)
	for _, a := range t.Attachments {
		data := base64.StdEncoding.EncodeToString(a.Data)
		switch a.MediaType {
		case "application/pdf":
			blocks = append(blocks, anthropic.NewDocumentBlock(anthropic.Base64PDFSourceParam{Data: data}))
		case "image/jpeg", "image/png", "image/gif", "image/webp":
			blocks = append(blocks, anthropic.NewImageBlockBase64(a.MediaType, data))
		default:
			return nil, 0, fmt.Errorf("attachment of media type %q is neither an image nor a PDF", a.MediaType)
		}
		tokens += a.Tokens
	}
	if t.Text != "" || len(blocks) == 0 {
		blocks = append(blocks, anthropic.NewTextBlock(t.Text))
		tokens += estimateTokens(t.Text)
	}
	return blocks, tokens, nil
}

// watchdog cancels a call that has been silent for idle. It is armed while
// we wait on the network: from the start of each attempt, and reset by
// every read of the response body, pings included.
type watchdog struct {
	idle  time.Duration
	timer *time.Timer
}

func (w *watchdog) kick() { w.timer.Reset(w.idle) }

type watchdogKey struct{}

// watchMiddleware runs around every attempt the SDK makes. It keeps the
// call's watchdog fed and caps the SDK's retry waits at maxWait.
func watchMiddleware(maxWait time.Duration) option.Middleware {
	return func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		wd, _ := req.Context().Value(watchdogKey{}).(*watchdog)
		if wd != nil {
			wd.kick()
		}
		res, err := next(req)
		if err != nil || res == nil {
			return res, err
		}
		if res.StatusCode >= 400 {
			if wait, ok := retryAfter(res.Header); ok && wait > maxWait {
				// The SDK honours this header over the status: the call
				// ends now with this response instead of sleeping.
				res.Header.Set("x-should-retry", "false")
			}
		}
		if wd != nil && res.Body != nil {
			wd.kick()
			res.Body = &activityBody{ReadCloser: res.Body, wd: wd}
		}
		return res, nil
	}
}

// retryAfter is the wait the SDK derives from a response's headers, read
// the same way: retry-after-ms first, then retry-after in seconds or as an
// HTTP date.
func retryAfter(h http.Header) (time.Duration, bool) {
	if v := h.Get("retry-after-ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	if v := h.Get("retry-after"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil {
			return time.Duration(s * float64(time.Second)), true
		}
		if t, err := time.Parse(time.RFC1123, v); err == nil {
			return time.Until(t), true
		}
	}
	return 0, false
}

// activityBody feeds the watchdog whenever bytes arrive.
type activityBody struct {
	io.ReadCloser
	wd *watchdog
}

func (b *activityBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.wd.kick()
	}
	return n, err
}
