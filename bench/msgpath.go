package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/p2/buddy/lambda/chat"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/apigwfixtures"
	"github.com/p2/buddy/lambda/dev/fakeconnections"
	"github.com/p2/buddy/lambda/dev/rie"
	"github.com/p2/buddy/lambda/dev/standins"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
)

// MessagePath is one reply streamed by the deployed websocket-message
// binary under the Lambda Runtime Interface Emulator, as in Lambda:
// sendMessage arrives as an invocation, the function stores the message in
// DynamoDB Local and invokes itself through the Lambda API (fakelambda,
// which forwards the Event invocation to the same function under the
// emulator once sendMessage has returned), the reply job reads the key
// from Secrets Manager (fakesecrets), streams from the stand-in model and
// posts frames to @connections (fakeconnections' recorder, which times
// them). Only the function's own process is weighed.
type MessagePath struct {
	Reply   ReplyStats
	Gaps    []time.Duration
	PeakRSS int64 // bytes, VmHWM of the function process
	Posts   int   // every @connections post of the reply
	Elapsed time.Duration
}

// RunMessagePath streams one reply of tokens at rate tokens/s through bin
// under the emulator rieBin, with s's stand-ins (DynamoDB Local included).
func RunMessagePath(ctx context.Context, s *standins.Set, rieBin, home, bin string, tokens, rate int) (*MessagePath, error) {
	model, err := startModel()
	if err != nil {
		return nil, err
	}
	defer model.Close()
	const user, conn = "bench-user", "YmVuY2htYXJrMQ="
	now := time.Now()
	st := store.NewDynamo(s.DB.Client, s.DB.Tables)
	if err := st.PutConnection(ctx, store.Connection{ConnectionID: conn, UserID: user, ConnectedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		return nil, fmt.Errorf("seed connection: %w", err)
	}

	body, _ := json.Marshal(map[string]string{
		"action": "sendMessage", "requestId": "bench-reply",
		"text": directives(tokens, rate, 0) + " Write a long answer.",
	})
	reply, rss, output, err := replyUnderEmulator(ctx, s, rieBin, home, bin, model.URL, conn, body)
	if err != nil {
		return nil, err
	}
	rs := reply.Stats()
	if rs.Error != "" || !rs.End {
		return nil, fmt.Errorf("reply did not end well (error %q, end %v)\n%s", rs.Error, rs.End, output)
	}
	return &MessagePath{Reply: rs, Gaps: reply.Gaps(), PeakRSS: rss, Posts: rs.Frames, Elapsed: rs.LastDelta.Sub(rs.FirstDelta)}, nil
}

// replyUnderEmulator runs the message function bin under the emulator
// rieBin with s's stand-ins and the model at modelURL, sends body (a
// sendMessage) from connection conn, and returns the reply as conn
// received it, the function process's peak RSS (VmHWM, bytes) after it,
// and the function's output.
func replyUnderEmulator(ctx context.Context, s *standins.Set, rieBin, home, bin, modelURL, conn string, body []byte) (*Reply, int64, string, error) {
	reply := NewReply(time.Time{})
	s.Posts.OnPost = func(p fakeconnections.Post) {
		if p.ConnectionID == conn {
			reply.Add(p.Data, p.At)
		}
	}
	defer func() { s.Posts.OnPost = nil }()
	fn := manifest.WebSocketMessage
	env := Env{Home: home, Stands: s}.FunctionEnv(fn, filepath.Dir(bin), "bootstrap",
		map[string]string{config.AnthropicBaseURL: modelURL})
	f, err := rie.Start(ctx, rie.Options{RIE: rieBin, Bootstrap: bin, Env: env})
	if err != nil {
		return nil, 0, "", err
	}
	defer f.Stop()
	s.Route(fn.Name, f)
	defer s.Route(fn.Name, nil)
	rss, err := invokeReply(ctx, s, f, conn, body, reply)
	return reply, rss, f.Output(), err
}

// invokeReply sends body (a sendMessage) from connection conn to the
// function f under the emulator, waits for the reply job it dispatches
// to end (its frames go to reply) and returns the function process's
// peak RSS (VmHWM, bytes) after it.
func invokeReply(ctx context.Context, s *standins.Set, f *rie.Function, conn string, body []byte, reply *Reply) (int64, error) {
	before := s.ForwardedSoFar()
	resp, err := f.Invoke(ctx, apigwfixtures.Message(conn, manifest.RouteSendMessage, string(body)).JSON())
	if err != nil {
		return 0, err
	}
	if _, msg, bad := resp.FunctionError(); bad || resp.Status != http.StatusOK {
		return 0, fmt.Errorf("websocket-message failed sendMessage (%d): %s %s\n%s", resp.Status, msg, resp.Body, f.Output())
	}
	// The reply job ends after its last post; a refused sendMessage (an
	// error frame, still a 200) dispatches no job, so its error frame
	// ends the wait too.
	jobs, err := s.WaitForwarded(ctx, before, 1, reply.Ended())
	if err != nil {
		return 0, err
	}
	if len(jobs) == 0 {
		if e := reply.Stats().Error; e != "" {
			return 0, fmt.Errorf("websocket-message answered an error frame: %s\n%s", e, f.Output())
		}
		// The end frame came first; the job's answer follows it.
		if jobs, err = s.WaitForwarded(ctx, before, 1, nil); err != nil {
			return 0, err
		}
	}
	if j := jobs[0]; j.Err != nil || j.Resp.Status != http.StatusOK {
		return 0, fmt.Errorf("the reply job failed (%d, %v): %s\n%s", j.Resp.Status, j.Err, j.Resp.Body, f.Output())
	} else if _, msg, bad := j.Resp.FunctionError(); bad {
		return 0, fmt.Errorf("the reply job failed: %s\n%s", msg, f.Output())
	}
	pid, err := f.RuntimePID()
	if err != nil {
		return 0, err
	}
	return peakRSS(pid)
}

func messagePath(ctx context.Context, o *Options, r *Results, h *harness, bins map[string]string) error {
	bin, ok := bins[manifest.WebSocketMessage.Dir]
	if !ok {
		return fmt.Errorf("%w: websocket-message not built", ErrSkip)
	}
	if h.stands.DB == nil {
		return fmt.Errorf("%w: %v", ErrSkip, h.dbErr)
	}
	m, err := RunMessagePath(ctx, h.stands, h.rie, h.home, bin, o.ReplyTokens, o.ReplyRate)
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
	r.Note("posts, frames and peak RSS: the deployed websocket-message binary (GOARCH=%s) under %s %s, sendMessage + its self-invoked reply job of %d output tokens at %d tokens/s (the job through the Lambda API stand-in, back to the same function); peak RSS is that process's VmHWM (init included), in MiB; frames counted at the @connections stand-in", runtime.GOARCH, rie.Command, h.rieVersion, m.Reply.Output, o.ReplyRate)
	return nil
}

// peakRSS is the process's high-water resident set (VmHWM) in bytes: the
// most memory it held at any moment of its life, which is what Lambda's
// "Max Memory Used" reports against the function's memory size.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
