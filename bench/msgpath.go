package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/p2/buddy/bench/awsstub"
	"github.com/p2/buddy/bench/runtimeapi"
	"github.com/p2/buddy/lambda/chat"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/schema"
	"github.com/p2/buddy/lambda/store"
)

// MessagePath is one reply streamed by the deployed websocket-message
// binary in its own process, as in Lambda: sendMessage arrives through the
// Runtime API stand-in, the function stores the message in DynamoDB Local
// and invokes itself (the stub turns the Invoke into the next invocation),
// the reply job reads the key from Secrets Manager (the stub), streams from
// the stand-in model and posts frames to @connections (the stub, which
// counts them). Only the function's own process is weighed.
type MessagePath struct {
	Reply   ReplyStats
	Gaps    []time.Duration
	PeakRSS int64 // bytes, VmHWM of the function process
	Posts   int   // every @connections post of the reply
	Elapsed time.Duration
}

// RunMessagePath streams one reply of tokens at rate tokens/s through bin.
func RunMessagePath(ctx context.Context, outDir, bin string, tokens, rate int) (*MessagePath, error) {
	model, err := startModel()
	if err != nil {
		return nil, err
	}
	defer model.Close()
	db, err := dynamodblocal.StartWithTables(ctx, dynamodblocal.Options{}, tablePrefix)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSkip, err)
	}
	defer db.Stop()
	const user, conn = "bench-user", "YmVuY2htYXJrMQ="
	now := time.Now()
	st := store.NewDynamo(db.Client, db.Tables)
	if err := st.PutConnection(ctx, store.Connection{ConnectionID: conn, UserID: user, ConnectedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		return nil, fmt.Errorf("seed connection: %w", err)
	}

	api, err := runtimeapi.Start("arn:aws:lambda:eu-west-1:000000000000:function:"+schema.WebSocketMessage.Name, 4)
	if err != nil {
		return nil, err
	}
	defer api.Close()
	reply := NewReply(time.Time{})
	var mu sync.Mutex
	var invokeErr error
	stub := &awsstub.Stub{
		SecretName:   config.ModelDefaults()[config.SecretName],
		SecretString: `{"api_key":"sk-ant-benchmark"}`,
		OnInvoke: func(_ string, payload []byte) {
			if _, err := api.Enqueue(runtimeapi.Invocation{Payload: slices.Clone(payload)}); err != nil {
				mu.Lock()
				invokeErr = err
				mu.Unlock()
			}
		},
		OnPost: func(p awsstub.Post) {
			if p.ConnectionID == conn {
				reply.Add(p.Body, p.At)
			}
		},
	}
	if err := stub.Start(); err != nil {
		return nil, err
	}
	defer stub.Close()
	home, err := os.MkdirTemp(outDir, "home-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	env := Env{Endpoints: stub.URL, Home: home}.FunctionEnv(schema.WebSocketMessage.Name, filepath.Dir(bin), "bootstrap",
		"AWS_ENDPOINT_URL_DYNAMODB="+db.Endpoint(),
		config.AnthropicBaseURL+"="+model.URL,
		"AWS_LAMBDA_RUNTIME_API="+api.Addr)

	body, _ := json.Marshal(map[string]string{
		"action": "sendMessage", "requestId": "bench-reply",
		"text": directives(tokens, rate, 0) + " Write a long answer.",
	})
	ev, _ := json.Marshal(map[string]any{
		"requestContext": map[string]any{
			"routeKey": schema.RouteSendMessage, "eventType": "MESSAGE", "connectionId": conn,
			"requestId": runtimeapi.NewID(), "domainName": "127.0.0.1", "stage": "bench", "apiId": "bench",
			"requestTimeEpoch": now.UnixMilli(),
		},
		"body": string(body), "isBase64Encoded": false,
	})
	if _, err := api.Enqueue(runtimeapi.Invocation{Payload: ev, Timeout: 29 * time.Second}); err != nil {
		return nil, err
	}
	p, err := startProc([]string{bin}, filepath.Dir(bin), env)
	if err != nil {
		return nil, err
	}
	defer p.kill()

	// Two invocations answer: sendMessage, then the reply job. An error
	// frame (e.g. a refused sendMessage, which still answers 200) ends the
	// wait at once rather than at the budget.
	ended := reply.Ended()
	for answered := 0; answered < 2; {
		select {
		case <-ended:
			if e := reply.Stats().Error; e != "" {
				return nil, fmt.Errorf("websocket-message answered an error frame: %s\n%s", e, p.out)
			}
			ended = nil
		case res := <-api.Results():
			if res.Err {
				return nil, fmt.Errorf("websocket-message failed invocation %d: %s\n%s", answered+1, res.Body, p.out)
			}
			answered++
		case b := <-api.InitErrors():
			return nil, fmt.Errorf("websocket-message init error: %s\n%s", b, p.out)
		case <-p.done:
			return nil, fmt.Errorf("websocket-message exited (%v)\n%s", p.waitErr, p.out)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	mu.Lock()
	err = invokeErr
	mu.Unlock()
	if err != nil {
		return nil, err
	}
	rss, err := peakRSS(p.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	rs := reply.Stats()
	if rs.Error != "" || !rs.End {
		return nil, fmt.Errorf("reply did not end well (error %q, end %v)\n%s", rs.Error, rs.End, p.out)
	}
	return &MessagePath{Reply: rs, Gaps: reply.Gaps(), PeakRSS: rss, Posts: rs.Frames, Elapsed: rs.LastDelta.Sub(rs.FirstDelta)}, nil
}

func messagePath(ctx context.Context, o *Options, r *Results, bins map[string]string) error {
	bin, ok := bins[schema.WebSocketMessage.Dir]
	if !ok {
		return fmt.Errorf("%w: websocket-message not built", ErrSkip)
	}
	m, err := RunMessagePath(ctx, o.OutDir, bin, o.ReplyTokens, o.ReplyRate)
	if err != nil {
		return err
	}
	r.ReplyTokens, r.ReplyRate = int(m.Reply.Output), o.ReplyRate
	posts, deltas := m.Posts, m.Reply.Deltas
	maxFrame := m.Reply.MaxFrame
	// The last delta is the flush at the end of the reply, which the relay
	// posts at once by design (chat.DefaultWindow); the smallest gap is
	// taken over the steady stream before it.
	var minGap time.Duration
	if n := len(m.Gaps); n > 1 {
		minGap = slices.Min(m.Gaps[:n-1])
	}
	gap := round(ms(minGap), 2)
	secs := round(m.Elapsed.Seconds(), 2)
	rss := round(float64(m.PeakRSS)/(1<<20), 1)
	r.PostsPerReply, r.DeltaPosts, r.MaxFrameBytes, r.MinPostGapMS, r.ReplySeconds, r.PeakRSSMB = &posts, &deltas, &maxFrame, &gap, &secs, &rss
	if n := len(m.Gaps); n > 1 {
		// n gaps of at least a window each span at least n windows; the
		// final flush is left out as above.
		var span time.Duration
		for _, g := range m.Gaps[:n-1] {
			span += g
		}
		perWindow := round(float64(n-1)/(span.Seconds()/chat.DefaultWindow.Seconds()), 3)
		r.PostsPerWindow = &perWindow
	}
	if lost := m.Reply.Lost; lost != 0 {
		return fmt.Errorf("message path lost %d frames of one reply", lost)
	}
	r.Note("posts, frames and peak RSS: the deployed websocket-message binary (GOARCH=%s) in its own process, sendMessage + its self-invoked reply job of %d output tokens at %d tokens/s; peak RSS is that process's VmHWM (init included), in MiB; frames counted at the @connections stub", runtime.GOARCH, m.Reply.Output, o.ReplyRate)
	return nil
}
