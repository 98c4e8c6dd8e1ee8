package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/chat"
	"github.com/p2/buddy/lambda/dev/devserver"
	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/dev/wsclient"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/obs"
)

// Sizes of the dev-server runs that are not options: enough warm-up
// requests to open every keep-alive connection and fill the secret cache,
// and short replies for the ttft samples, whose length does not matter.
const (
	ttftWarmup      = 5
	ttftReplyTokens = 5
	dialParallel    = 16
)

// DevServer drives the local dev server in-process with real
// WebSocket clients.
type DevServer struct {
	srv       *devserver.Server
	db        *dynamodblocal.Local
	client    *http.Client
	summaries *summaries
	// calls times every store call of the functions (RoundTripsBeforeModel).
	calls *storeCalls
	// sibling: db belongs to another DevServer (withEnv).
	sibling bool
}

// StartDevServer starts the dev server on free ports with the offline
// stand-in model; state goes under dir. It starts the DynamoDB Local the
// dev server would (its data under dir/dynamodb) itself, so that the
// functions' store reaches it through a client whose calls are timed.
func StartDevServer(ctx context.Context, dir string) (_ *DevServer, err error) {
	db, err := dynamodblocal.StartWithTables(ctx, dynamodblocal.Options{Dir: filepath.Join(dir, "dynamodb")}, devserver.TablePrefix)
	if err != nil {
		if strings.Contains(err.Error(), "make tools") {
			return nil, fmt.Errorf("%w: %v", ErrSkip, err)
		}
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = db.Stop()
		}
	}()
	calls := newStoreCalls()
	timed := &dynamodblocal.Local{
		Server: db.Server,
		Client: dynamodblocal.NewClient(db.Endpoint(), func(o *dynamodb.Options) { o.HTTPClient = calls.client() }),
		Tables: db.Tables,
	}
	sums := &summaries{ttft: map[string]float64{}}
	srv, err := devserver.Start(ctx, devserver.Config{StateDir: dir, DynamoDB: timed, Log: slog.New(sums)})
	if err != nil {
		return nil, err
	}
	if srv.StandIn == nil {
		srv.Close()
		return nil, errors.New("dev server runs without its stand-in model")
	}
	return &DevServer{srv: srv, db: db, client: &http.Client{Timeout: 30 * time.Second}, summaries: sums, calls: calls}, nil
}

// Close stops the dev server and its DynamoDB Local (a sibling's is its
// first dev server's, which stops it).
func (d *DevServer) Close() error {
	err := d.srv.Close()
	if !d.sibling {
		err = errors.Join(err, d.db.Stop())
	}
	return err
}

// withEnv starts a second dev server on d's DynamoDB Local whose functions
// take the variables of env (DAILY_TOKEN_LIMIT, MAX_TOKENS,
// MAX_INFLIGHT_REPLIES_PER_USER, RESUMES_PER_MINUTE), validated as in AWS;
// its state (the signing key) goes under dir. Its store calls are not
// timed and it has gateways of its own, so its posts are counted apart.
func (d *DevServer) withEnv(ctx context.Context, dir string, env map[string]string) (*DevServer, error) {
	sums := &summaries{ttft: map[string]float64{}}
	srv, err := devserver.Start(ctx, devserver.Config{StateDir: dir, DynamoDB: d.db, Log: slog.New(sums), Getenv: func(k string) string { return env[k] }})
	if err != nil {
		return nil, err
	}
	if srv.StandIn == nil {
		srv.Close()
		return nil, errors.New("dev server runs without its stand-in model")
	}
	return &DevServer{srv: srv, db: d.db, sibling: true, client: d.client, summaries: sums}, nil
}

// token asks POST /dev/token for a JWT, as the chat page does.
func (d *DevServer) token(ctx context.Context, sub string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.srv.HTTPURL+"/dev/token", strings.NewReader(`{"sub":"`+sub+`"}`))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := d.client.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusOK || out.Token == "" {
		return "", fmt.Errorf("POST /dev/token: status %d: %v", res.StatusCode, err)
	}
	return out.Token, nil
}

func (d *DevServer) dial(ctx context.Context, sub string) (*client, error) {
	tok, err := d.token(ctx, sub)
	if err != nil {
		return nil, err
	}
	return dialClient(ctx, d.srv.WebSocketURL, tok)
}

// TTFTOverhead sends n messages one after the other on one warm socket and
// returns, for each, the client's time to first delta minus the stand-in's
// own: the stand-in is told [[ttft=0]] and [[rate=0]], so it emits its first
// token as soon as it has parsed the request, and everything the client
// waits for is Buddy's path (gateway, function, store, model client,
// relay, @connections, gateway).
//
// The reply's summary line (its ttftMs runs from the model call to the
// first delta posted) splits each sample into the part before the model
// call and the part after; the split goes into Breakdown.
//
// With a wall-clock profiler, sampling is switched on from each send to its
// first delta.
func (d *DevServer) TTFTOverhead(ctx context.Context, n int, wp *wallProfiler) (total []float64, b *Breakdown, err error) {
	c, err := d.dial(ctx, "bench-ttft")
	if err != nil {
		return nil, nil, err
	}
	defer c.close()
	ids := map[string]float64{}
	for i := 0; i < ttftWarmup+n; i++ {
		id := fmt.Sprintf("ttft-%d", i)
		var onFirst func()
		if wp != nil && i >= ttftWarmup {
			wp.active.Store(true)
			onFirst = func() { wp.active.Store(false) }
		}
		r, err := c.send(ctx, id, directives(ttftReplyTokens, 0, 0)+" How are you?", onFirst)
		if err != nil {
			return nil, nil, err
		}
		if err := c.wait(ctx, r); err != nil {
			return nil, nil, err
		}
		s := r.Stats()
		if s.Error != "" || s.Lost != 0 {
			return nil, nil, fmt.Errorf("ttft request %d: error %q, %d lost frames", i, s.Error, s.Lost)
		}
		if i >= ttftWarmup {
			t := ms(s.FirstDelta.Sub(s.Sent))
			total = append(total, t)
			ids[id] = t
		}
	}
	b = &Breakdown{}
	var ok bool
	b.BeforeModelP50, b.BeforeModelP99, b.ModelToFirstPostP50, b.ModelToFirstPostP99, ok = d.split(ctx, ids)
	if !ok {
		return nil, nil, errors.New("the dev server logged no reply summary lines: cannot split the ttft")
	}
	get, put, query, err := d.storeRoundTrips(ctx, 50)
	if err != nil {
		return nil, nil, err
	}
	b.StoreGetItemP50 = round(Percentile(get, 50), 2)
	b.StorePutItemP50 = round(Percentile(put, 50), 2)
	b.StoreQueryP50 = round(Percentile(query, 50), 2)
	return total, b, nil
}

// split divides client times to first delta (ms, by client request id) at
// the model call, using each reply's summary line, and returns the p50 and
// p99 of both parts. A summary line is written when its reply job returns,
// just after the end frame, hence the short wait for the last ones.
func (d *DevServer) split(ctx context.Context, ids map[string]float64) (beforeP50, beforeP99, afterP50, afterP99 float64, ok bool) {
	var before, after []float64
	_ = poll(ctx, func() bool {
		before, after = before[:0], after[:0]
		for id, t := range ids {
			if m, ok := d.summaries.get(id); ok {
				before, after = append(before, t-m), append(after, m)
			}
		}
		return len(after) == len(ids)
	})
	if len(after) == 0 {
		return 0, 0, 0, 0, false
	}
	return round(Percentile(before, 50), 2), round(Percentile(before, 99), 2),
		round(Percentile(after, 50), 2), round(Percentile(after, 99), 2), true
}

// storeRoundTrips times n calls of each kind the message path makes before
// the model call (GetItem, PutItem, Query) on the dev server's DynamoDB
// Local, with the SDK client the store uses: the floor of every store call
// on the path. The items are scratch ones under an id no client uses.
func (d *DevServer) storeRoundTrips(ctx context.Context, n int) (get, put, query []float64, err error) {
	db := dynamodblocal.NewClient(d.srv.DynamoEndpoint)
	table := devserver.TablePrefix + manifest.Connections.ID
	key := map[string]types.AttributeValue{manifest.AttrConnectionID: &types.AttributeValueMemberS{Value: "bench-scratch"}}
	msgs := devserver.TablePrefix + manifest.Messages.ID
	cond := manifest.AttrConversationID + " = :c"
	vals := map[string]types.AttributeValue{":c": &types.AttributeValueMemberS{Value: "bench-scratch"}}
	calls := []struct {
		out  *[]float64
		call func() error
	}{
		{&put, func() error {
			_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &table, Item: key})
			return err
		}},
		{&get, func() error {
			_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &table, Key: key})
			return err
		}},
		{&query, func() error {
			_, err := db.Query(ctx, &dynamodb.QueryInput{TableName: &msgs, KeyConditionExpression: &cond, ExpressionAttributeValues: vals})
			return err
		}},
	}
	const warm = 5
	for i := 0; i < warm+n; i++ {
		for _, c := range calls {
			start := time.Now()
			if err := c.call(); err != nil {
				return nil, nil, nil, fmt.Errorf("DynamoDB Local round trip: %w", err)
			}
			if i >= warm {
				*c.out = append(*c.out, ms(time.Since(start)))
			}
		}
	}
	return get, put, query, nil
}

// summaries is a slog.Handler for the dev server's log that keeps the
// ttftMs of each reply's summary line, by client request id, and which
// client frames a route invocation has answered (its summary line is
// written as it returns).
type summaries struct {
	mu     sync.Mutex
	ttft   map[string]float64
	routed map[string]string // client request id → the route's outcome
	// serverErrors are the route, code and error of every summary line
	// whose outcome is our fault (obs.OutcomeServerError).
	serverErrors []string
}

func (s *summaries) Enabled(context.Context, slog.Level) bool { return true }

func (s *summaries) Handle(_ context.Context, r slog.Record) error {
	var route, id, outcome, errText string
	ttft, ok := 0.0, false
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "route":
			route = a.Value.String()
		case "clientRequestId":
			id = a.Value.String()
		case "outcome":
			outcome = a.Value.String()
		case "error":
			errText = a.Value.String()
		case "ttftMs":
			if a.Value.Kind() == slog.KindFloat64 {
				ttft, ok = a.Value.Float64(), true
			}
		}
		return true
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if outcome == obs.OutcomeServerError {
		s.serverErrors = append(s.serverErrors, fmt.Sprintf("%s %s: %s", route, id, errText))
	}
	switch {
	case route == "reply" && ok && id != "":
		s.ttft[id] = ttft
	case route != "reply" && route != "" && id != "":
		if s.routed == nil {
			s.routed = map[string]string{}
		}
		s.routed[id] = outcome
	}
	return nil
}

// failures returns the server errors logged so far.
func (s *summaries) failures() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.serverErrors)
}

// answered reports whether every one of ids has had its route invocation
// return.
func (s *summaries) answered(ids []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if _, ok := s.routed[id]; !ok {
			return false
		}
	}
	return true
}

func (s *summaries) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *summaries) WithGroup(string) slog.Handler      { return s }

func (s *summaries) get(id string) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.ttft[id]
	return v, ok
}

// ConcurrentResult is what the many-sockets run saw.
type ConcurrentResult struct {
	Lost, Errors int
	TTFT         []float64          // ms, one per reply that started
	ids          map[string]float64 // the same, by client request id
	FirstErrors  []string           // a few error descriptions, for the report
	// How long opening the sockets and streaming every reply took.
	Dial, Stream time.Duration
}

// Concurrent opens sockets sockets (one user each), then has all of them
// send at the same instant and stream a reply of tokens at rate tokens/s.
// Lost frames are seq gaps, duplicates and reorderings seen by the
// clients, missing start or end frames, and posts the gateway delivered or
// refused (410) that no client read.
func (d *DevServer) Concurrent(ctx context.Context, sockets, tokens, rate int) (*ConcurrentResult, error) {
	clients := make([]*client, sockets)
	defer func() {
		var wg sync.WaitGroup
		for _, c := range clients {
			if c != nil {
				wg.Add(1)
				go func() { defer wg.Done(); c.close() }()
			}
		}
		wg.Wait()
	}()
	dialStart := time.Now()
	sem := make(chan struct{}, dialParallel)
	errs := make([]error, sockets)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			clients[i], errs[i] = d.dial(ctx, fmt.Sprintf("bench-user-%03d", i))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("opening %d sockets: %w", sockets, err)
	}
	res := &ConcurrentResult{Dial: time.Since(dialStart), ids: map[string]float64{}}

	before := d.srv.Stats()
	var mu sync.Mutex
	fail := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		res.Errors++
		if len(res.FirstErrors) < 5 {
			res.FirstErrors = append(res.FirstErrors, fmt.Sprintf(format, a...))
		}
	}
	frames := 0
	start := make(chan struct{})
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := c.send(ctx, fmt.Sprintf("conc-%03d", i), directives(tokens, rate, 0)+" Tell me a story.", nil)
			if err != nil {
				fail("socket %d: %v", i, err)
				return
			}
			err = c.wait(ctx, r)
			s := r.Stats()
			mu.Lock()
			res.Lost += s.Lost
			frames += s.Frames
			if s.Deltas > 0 {
				t := ms(s.FirstDelta.Sub(s.Sent))
				res.TTFT = append(res.TTFT, t)
				res.ids[fmt.Sprintf("conc-%03d", i)] = t
			}
			mu.Unlock()
			switch {
			case err != nil:
				fail("socket %d: %v", i, err)
			case s.Error != "":
				fail("socket %d: error frame %s", i, s.Error)
			case int(s.Output) != tokens || len(strings.Fields(r.Text())) != tokens:
				fail("socket %d: %d words in the deltas, end frame says %d, asked %d", i, len(strings.Fields(r.Text())), s.Output, tokens)
			}
		}()
	}
	streamStart := time.Now()
	close(start)
	wg.Wait()
	res.Stream = time.Since(streamStart)
	// Every reply has ended, but the gateway counts a post after it
	// wrote the frame: give the last counts a moment to land.
	var posted int64
	_ = poll(ctx, func() bool {
		after := d.srv.Stats()
		posted = after.Posts - before.Posts + after.GonePosts - before.GonePosts
		return posted >= int64(frames)
	})
	if extra := int(posted) - frames; extra > 0 {
		res.Lost += extra
	}
	return res, nil
}

// devServer takes the dev-server figures into r.
func devServer(ctx context.Context, o *Options, r *Results) error {
	dir, err := os.MkdirTemp(o.OutDir, "devserver-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d, err := StartDevServer(ctx, dir)
	if err != nil {
		return err
	}
	defer d.Close()

	if o.TTFTSamples > 0 {
		fmt.Fprintf(o.Progress, "dev server: %d sequential warm messages for the ttft overhead\n", o.TTFTSamples)
		stop, err := profile(o, "ttft")
		if err != nil {
			return err
		}
		var wp *wallProfiler
		if o.Profile {
			wp = startWallProfiler(500 * time.Microsecond)
		}
		xs, b, err := d.TTFTOverhead(ctx, o.TTFTSamples, wp)
		stop()
		if wp != nil {
			wp.close()
		}
		if err != nil {
			return err
		}
		if wp != nil {
			if err := writeWallProfile(o, wp, "ttft", xs); err != nil {
				return err
			}
		}
		r.TTFTOverheadMS = &Latency{P50: round(Percentile(xs, 50), 2), P99: round(Percentile(xs, 99), 2), Samples: len(xs)}
		r.TTFTBreakdownMS = b
		r.Note("ttft overhead: client send to first delta through the in-process dev server (DynamoDB Local store, offline stand-in told [[ttft=0]] so its own time to first token is nil), one warm socket, %d warm-up messages not counted", ttftWarmup)
	}
	if o.RoundTripSamples > 0 {
		fmt.Fprintf(o.Progress, "dev server: %d users counting store round trips before the model call\n", o.RoundTripSamples)
		t, err := d.RoundTripsBeforeModel(ctx, o.RoundTripSamples)
		if err != nil {
			return err
		}
		r.StoreRoundTrips = &StoreRoundTrips{
			NewConversation:             t.Max[kindNew],
			FollowUp:                    t.Max[kindFollowUp],
			NewConversationFirstMessage: t.Max[kindNewFresh],
			NewConversationSavedPrompt:  t.Max[kindNewPrompt],
			Samples:                     o.RoundTripSamples,
			Chains:                      map[string][]string{},
		}
		for _, k := range []struct{ key, kind string }{
			{"new_conversation", kindNew}, {"follow_up", kindFollowUp}, {"new_conversation_first_message", kindNewFresh},
			{"new_conversation_saved_prompt", kindNewPrompt},
		} {
			r.StoreRoundTrips.Chains[k.key] = t.Chains[k.kind]
			r.Note("store round trips, %s: %s", k.kind, strings.Join(t.Chains[k.kind], " → "))
		}
		r.Note("store round trips: DynamoDB calls of the dev server's functions timed under their SDK client, from the client's sendMessage to the model stand-in receiving the request; the longest chain of calls made one after the other (side-by-side calls count once), the most of %d users", o.RoundTripSamples)
	}
	if o.ResumeSamples > 0 {
		fmt.Fprintf(o.Progress, "dev server: %d replies dropped mid-stream and resumed from a new socket\n", o.ResumeSamples)
		samples, err := d.Resume(ctx, o.ResumeSamples)
		if err != nil {
			return err
		}
		xs := make([]float64, len(samples))
		for i, s := range samples {
			xs[i] = ms(s.FirstMissed)
		}
		r.ResumeMS = &Latency{P50: round(Percentile(xs, 50), 2), P99: round(Percentile(xs, 99), 2), Samples: len(xs)}
		r.Note("resume: a reply of %d tokens at %d tokens/s, its socket dropped (no close frame) after %d deltas; timed from the new socket's dial (token in hand: $connect, then resume with the last seq read) to the first missed delta; the running reply picks up a new listener at its next poll of its live record (every %s)", resumeReplyTokens, resumeReplyRate, resumeReadDeltas, chat.DefaultPoll)
	}
	if o.CacheTurns > 0 {
		fmt.Fprintf(o.Progress, "dev server: a %d-turn conversation with a saved prompt, its input priced with and without prompt caching\n", o.CacheTurns)
		run, err := d.PromptCache(ctx, o.CacheTurns)
		if err != nil {
			return err
		}
		pc := promptCacheResult(run)
		r.PromptCache = pc
		r.Note("prompt caching: one conversation of %d turns on the default model (%s) with the default PROMPT_CACHE=5m, sent one after the other on one socket: a saved prompt of %d words of instructions (POST /prompts, promptId on the first sendMessage; the stand-in counts words as tokens), user turns of a few dozen words, replies of %d-%d tokens; cached = Σ input×input price + cache read×read price + 5m/1h writes×their prices, uncached = Σ (input + cache read + cache creation)×input price, from each turn's end-frame usage and lambda/pricing; first cache read on turn %d",
			pc.Turns, pc.Model, pc.SystemPromptTokens, cacheReplyMin, cacheReplyMin+cacheReplySpread-1, pc.FirstCacheReadTurn)
		if pc.savedAgrees() {
			r.Note("prompt caching: GET /usage's savedUsd ($%.6f) equals uncached − cached", pc.UsageSavedUSD)
		} else {
			r.Note("prompt caching: GET /usage's savedUsd ($%.6f) differs from uncached − cached ($%.6f)", pc.UsageSavedUSD, pc.InputCostUSDUncached-pc.InputCostUSDCached)
		}
	}
	if o.QuotaSends > 0 && o.QuotaRounds > 0 {
		if err := quotaFigure(ctx, o, r, d, dir); err != nil {
			return err
		}
	}
	if o.ResumeStorm > 0 {
		if err := resumePostsFigure(ctx, o, r, d, dir); err != nil {
			return err
		}
	}
	if o.AttachmentSamples > 0 {
		if err := attachmentFigures(ctx, o, r, d); err != nil {
			return err
		}
	}
	if o.Sockets > 0 {
		rate := max(o.ReplyRate, 1)
		fmt.Fprintf(o.Progress, "dev server: %d sockets each streaming %d tokens at %d tokens/s, all sent at once\n", o.Sockets, o.ConcurrentTokens, rate)
		stop, err := profile(o, "concurrent")
		if err != nil {
			return err
		}
		c, err := d.Concurrent(ctx, o.Sockets, o.ConcurrentTokens, rate)
		stop()
		if err != nil {
			return err
		}
		if len(c.TTFT) == 0 {
			return fmt.Errorf("no reply of %d sockets started: %v", o.Sockets, c.FirstErrors)
		}
		r.Concurrent = &Concurrent{
			Sockets: o.Sockets, LostFrames: c.Lost, Errors: c.Errors, TokensPerReply: o.ConcurrentTokens,
			TTFTOverheadP50MS: round(Percentile(c.TTFT, 50), 2),
			TTFTOverheadP99MS: round(Percentile(c.TTFT, 99), 2),
		}
		if p50, p99, _, _, ok := d.split(ctx, c.ids); ok {
			r.Concurrent.BeforeModelP50MS, r.Concurrent.BeforeModelP99MS = &p50, &p99
		}
		fmt.Fprintf(o.Progress, "dev server: opened %d sockets in %s, all replies done %s after the sends\n", o.Sockets, c.Dial.Round(time.Millisecond), c.Stream.Round(time.Millisecond))
		for _, e := range c.FirstErrors {
			r.Note("concurrent: %s", e)
		}
		r.Note("concurrent: %d sockets, one user each, all sending sendMessage at the same instant, each streaming %d tokens at %d tokens/s through the in-process dev server", o.Sockets, o.ConcurrentTokens, rate)
	}
	return nil
}

// writeWallProfile writes the wall-clock profile to OutDir/<name>.wall.txt
// and shows it.
func writeWallProfile(o *Options, wp *wallProfiler, name string, ttft []float64) error {
	path := filepath.Join(o.OutDir, name+".wall.txt")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var sum float64
	for _, x := range ttft {
		sum += x
	}
	wp.report(io.MultiWriter(f, o.Progress), len(ttft), sum/float64(max(len(ttft), 1)))
	fmt.Fprintf(o.Progress, "wrote %s\n", path)
	return nil
}

// profile starts a CPU profile of this process (which runs the dev server)
// when Options.Profile is set; stop writes OutDir/<name>.cpu.pprof.
func profile(o *Options, name string) (stop func(), err error) {
	if !o.Profile {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Join(o.OutDir, name+".cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		fmt.Fprintf(o.Progress, "wrote %s\n", f.Name())
	}, nil
}

// poll checks done every few milliseconds until it holds or ctx ends: for
// what is certain to happen soon (a log line written after the last frame,
// a post counted after it was written), with no deadline of its own that a
// busy machine could trip.
func poll(ctx context.Context, done func() bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// client is one chat client on the WebSocket API (lambda/dev/wsclient)
// whose frames are read as they come and filed under their reply by
// requestId, each timed the moment it is read.
type client struct {
	conn *wsclient.Conn

	mu        sync.Mutex
	replies   map[string]*Reply
	unmatched int // frames for no known request (e.g. an error without requestId)
	readErr   error
	closed    chan struct{}
}

// dialClient connects to wsURL with token in the query string, as a
// browser does.
func dialClient(ctx context.Context, wsURL, token string) (*client, error) {
	conn, _, err := wsclient.Dial(ctx, wsURL, token)
	if err != nil {
		return nil, err
	}
	c := &client{conn: conn, replies: map[string]*Reply{}, closed: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *client) read() {
	defer close(c.closed)
	// Ends when the connection closes: close or the server going away.
	for {
		f, err := c.conn.Read(context.Background())
		if err != nil && !errors.Is(err, wsclient.ErrUndecodable) {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		r := c.replies[f.RequestID]
		if r == nil {
			c.unmatched++
		}
		c.mu.Unlock()
		if r != nil {
			r.Add(f.Raw, f.At)
		}
	}
}

// send starts a reply to text in a new conversation; the Reply's Sent is
// taken just before the frame is written. onFirst, when not nil, runs when
// the first delta arrives.
func (c *client) send(ctx context.Context, requestID, text string, onFirst func()) (*Reply, error) {
	return c.sendIn(ctx, requestID, "", text, onFirst)
}

// sendIn is send in conversation conv ("" opens one).
func (c *client) sendIn(ctx context.Context, requestID, conv, text string, onFirst func()) (*Reply, error) {
	return c.sendFrame(ctx, wsclient.SendMessage{RequestID: requestID, ConversationID: conv, Text: text}, onFirst)
}

// sendFrame is send of any sendMessage m (its action is set here).
func (c *client) sendFrame(ctx context.Context, m wsclient.SendMessage, onFirst func()) (*Reply, error) {
	m.Action = "sendMessage"
	requestID := m.RequestID
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	r := NewReply(time.Now())
	r.onFirst = onFirst
	c.mu.Lock()
	c.replies[requestID] = r
	c.mu.Unlock()
	r.mu.Lock()
	r.s.Sent = time.Now()
	r.mu.Unlock()
	if err := c.conn.SendRaw(ctx, b); err != nil {
		return nil, fmt.Errorf("send %s: %w", requestID, err)
	}
	return r, nil
}

// resume asks for the frames of reply messageID after afterSeq on this
// connection; what comes back under requestID is filed in the Reply
// returned (whose Sent is taken just before the frame is written).
func (c *client) resume(ctx context.Context, requestID, messageID string, afterSeq int) (*Reply, error) {
	r := NewReply(time.Now())
	c.mu.Lock()
	c.replies[requestID] = r
	c.mu.Unlock()
	r.mu.Lock()
	r.s.Sent = time.Now()
	r.mu.Unlock()
	if err := c.conn.Resume(ctx, requestID, messageID, afterSeq); err != nil {
		return nil, fmt.Errorf("resume %s: %w", requestID, err)
	}
	return r, nil
}

// wait blocks until r ends, the connection fails, or ctx ends.
func (c *client) wait(ctx context.Context, r *Reply) error {
	select {
	case <-r.Ended():
		return nil
	case <-c.closed:
		c.mu.Lock()
		defer c.mu.Unlock()
		return fmt.Errorf("connection closed during a reply: %w", c.readErr)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close says goodbye as a browser tab does and waits for the reader.
func (c *client) close() {
	_ = c.conn.Close()
	<-c.closed
}
