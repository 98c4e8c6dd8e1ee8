package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/errcode"
)

// ResumePosts is resume.posts_per_frame_max: the @connections posts one
// inbound resume frame causes, worst case, measured in the cases where a
// resume can cost posts, with the bound the reply path states.
type ResumePosts struct {
	// PostsPerFrameMax is the most posts any one resume frame of the
	// cases caused.
	PostsPerFrameMax int `json:"posts_per_frame_max"`
	// Bound is the stated bound of one resume frame's posts, and
	// BoundPosts its value at the dev server's MAX_TOKENS.
	Bound      string `json:"bound"`
	BoundPosts int64  `json:"bound_posts"`
	MaxTokens  int64  `json:"max_tokens"`
	// AsExpected: every case caused exactly the posts the protocol says
	// (see ResumeCase.ExpectedByResumes) and nothing was lost.
	AsExpected bool         `json:"as_expected"`
	Cases      []ResumeCase `json:"cases"`
}

// ResumeCase is one way of resuming, on one user.
type ResumeCase struct {
	Name             string `json:"case"`
	ResumesPerMinute int    `json:"resumes_per_minute"`
	ResumeFrames     int    `json:"resume_frames"`
	// ReplyFrames are the frames of the reply itself: for a running
	// reply, what its sendMessage's connection gets (start, deltas, end);
	// for an ended one, its deltas.
	ReplyFrames int `json:"reply_frames"`
	// Posts are every @connections post of the case, counted at the dev
	// server's gateway; ByResumes those the resume frames caused (for a
	// running reply, Posts − ReplyFrames; for an ended one, Posts).
	Posts     int64 `json:"posts"`
	ByResumes int64 `json:"posts_by_resumes"`
	// ExpectedByResumes is what the protocol says they cause: nothing
	// from a connection already listening, one rate_limited error frame
	// for a resume over RESUMES_PER_MINUTE, and for an ended reply the
	// frames after afterSeq plus its end.
	ExpectedByResumes int64 `json:"expected_posts_by_resumes"`
	RateLimited       int   `json:"rate_limited"`
	// WorstPerFrame is the most posts one resume frame caused: the frames
	// that came back under its requestId, plus any post the client got
	// under no resume's requestId beyond the reply's own.
	WorstPerFrame int `json:"worst_posts_per_frame"`
}

// Sizes of the resume-posts cases: a running reply long enough to outlast
// every resume of a case (it is stopped once they are answered), and an
// ended reply paced at 10 tokens a second, so that each 100 ms window
// carries one token: one frame per token, the most frames a reply of that
// many tokens can have.
const (
	runningReplyTokens = 3000
	runningReplyRate   = 100
	endedReplyTokens   = 40
	endedReplyRate     = 10
	// quietPosts is how long the gateway's post count must stand still
	// before a case is counted: a post is counted after it is written.
	quietPosts = 300 * time.Millisecond
)

// The cases, each on a new user (RESUMES_PER_MINUTE counts per user):
//
//   - "listening" (resumeRunning, n=1): a resume (afterSeq -1) from the
//     connection that sent the message, while its reply runs: it listens
//     already, so no post;
//   - "ended" (resumeEnded): a reply of one frame per token that has ended,
//     resumed from a new connection from afterSeq -1, then from the same
//     one from the middle: the frames after afterSeq and the end;
//   - "storm" (resumeRunning, n=100): resume frames (afterSeq -1) from the
//     connection that sent the message, as fast as it can, while its reply
//     runs: the reply's own frames once, and one rate_limited error frame
//     for each resume over RESUMES_PER_MINUTE.

func (d *DevServer) posts() int64 {
	s := d.srv.Stats()
	return s.Posts + s.GonePosts
}

// settle waits until the gateway's post count stands still for quietPosts
// and returns it.
func (d *DevServer) settle(ctx context.Context) (int64, error) {
	last, since := d.posts(), time.Now()
	err := poll(ctx, func() bool {
		if n := d.posts(); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= quietPosts
	})
	return last, err
}

// runningReply sends a long paced reply on a new socket of a new user and
// waits for its first delta.
func (d *DevServer) runningReply(ctx context.Context, name string) (*client, *Reply, error) {
	c, err := d.dial(ctx, fmt.Sprintf("bench-%s-%d", name, time.Now().UnixNano()))
	if err != nil {
		return nil, nil, err
	}
	first := make(chan struct{})
	r, err := c.send(ctx, name, directives(runningReplyTokens, runningReplyRate, 0)+" Tell me a long story.", func() { close(first) })
	if err != nil {
		c.close()
		return nil, nil, err
	}
	select {
	case <-first:
	case <-r.Ended():
		c.close()
		return nil, nil, fmt.Errorf("the reply ended before its first delta: %s", r.Stats().Error)
	case <-ctx.Done():
		c.close()
		return nil, nil, ctx.Err()
	}
	return c, r, nil
}

// resumeRunning has the connection that sent the reply resume it n times
// at once, waits for every resume's route to return, stops the reply and
// counts what the connection got.
func (d *DevServer) resumeRunning(ctx context.Context, name string, n, perMinute int) (ResumeCase, error) {
	rc := ResumeCase{Name: name, ResumesPerMinute: perMinute, ResumeFrames: n}
	before, err := d.settle(ctx)
	if err != nil {
		return rc, err
	}
	c, r, err := d.runningReply(ctx, name)
	if err != nil {
		return rc, err
	}
	defer c.close()
	msg := r.Stats().MessageID
	ids := make([]string, n)
	rs := make([]*Reply, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s-resume-%d", name, i)
		if rs[i], err = c.resume(ctx, ids[i], msg, -1); err != nil {
			return rc, err
		}
	}
	if err := poll(ctx, func() bool { return d.summaries.answered(ids) }); err != nil {
		return rc, err
	}
	if r.Stats().End {
		return rc, errors.New("the reply ended before its resumes were answered: they would replay it")
	}
	stop, err := c.stopReply(ctx, name+"-stop", msg)
	if err != nil {
		return rc, err
	}
	if err := c.wait(ctx, r); err != nil {
		return rc, err
	}
	after, err := d.settle(ctx)
	if err != nil {
		return rc, err
	}
	s := r.Stats()
	if !s.End || s.Lost != 0 {
		return rc, fmt.Errorf("the reply's own frames: %d lost, end %v, error %q", s.Lost, s.End, s.Error)
	}
	if st := stop.Stats(); st.Frames != 0 {
		return rc, fmt.Errorf("the stop was answered: %s", st.Error)
	}
	rc.ReplyFrames = 2 + s.Seqs
	rc.Posts = after - before
	rc.ByResumes = rc.Posts - int64(rc.ReplyFrames)
	attributed := 0
	for _, x := range rs {
		xs := x.Stats()
		if xs.Code == errcode.RateLimited {
			rc.RateLimited++
		}
		attributed += xs.Frames
		rc.WorstPerFrame = max(rc.WorstPerFrame, xs.Frames)
	}
	// Posts under the sendMessage's requestId beyond the reply's own, or
	// under none, cannot be told apart: all of them count against one
	// frame.
	rc.WorstPerFrame += max(0, int(rc.ByResumes)-attributed)
	rc.ExpectedByResumes = int64(rc.RateLimited)
	return rc, nil
}

// resumeEnded streams a reply of one frame per token to its end, then
// resumes it from a new connection from afterSeq -1 (every frame and the
// end) and from the same one from the middle.
func (d *DevServer) resumeEnded(ctx context.Context, perMinute int) (ResumeCase, error) {
	rc := ResumeCase{Name: "ended", ResumesPerMinute: perMinute, ResumeFrames: 2}
	tok, err := d.token(ctx, fmt.Sprintf("bench-ended-%d", time.Now().UnixNano()))
	if err != nil {
		return rc, err
	}
	a, err := dialClient(ctx, d.srv.WebSocketURL, tok)
	if err != nil {
		return rc, err
	}
	r, err := a.send(ctx, "ended", directives(endedReplyTokens, endedReplyRate, 0)+" Tell me a short story.", nil)
	if err != nil {
		a.close()
		return rc, err
	}
	err = a.wait(ctx, r)
	a.close()
	if err != nil {
		return rc, err
	}
	s := r.Stats()
	if !s.End || s.Lost != 0 {
		return rc, fmt.Errorf("the reply: %d lost, end %v, error %q", s.Lost, s.End, s.Error)
	}
	k := s.Deltas
	rc.ReplyFrames = k
	before, err := d.settle(ctx)
	if err != nil {
		return rc, err
	}
	b, err := dialClient(ctx, d.srv.WebSocketURL, tok)
	if err != nil {
		return rc, err
	}
	defer b.close()
	var want int64
	for i, after := range []int{-1, k / 2} {
		x, err := b.resume(ctx, fmt.Sprintf("ended-resume-%d", i), s.MessageID, after)
		if err != nil {
			return rc, err
		}
		if err := b.wait(ctx, x); err != nil {
			return rc, err
		}
		xs := x.Stats()
		if !xs.End || xs.Deltas != k-after-1 {
			return rc, fmt.Errorf("the replay after seq %d: %d deltas, end %v, error %q; want %d and the end", after, xs.Deltas, xs.End, xs.Error, k-after-1)
		}
		rc.WorstPerFrame = max(rc.WorstPerFrame, xs.Frames)
		want += int64(k - after) // the frames after afterSeq, and the end
	}
	after, err := d.settle(ctx)
	if err != nil {
		return rc, err
	}
	rc.Posts = after - before
	rc.ByResumes = rc.Posts
	rc.ExpectedByResumes = want
	return rc, nil
}

// resumePosts gathers the cases into the figure.
func resumePosts(maxTokens int64, cases []ResumeCase) *ResumePosts {
	rp := &ResumePosts{
		Bound:      "≤ the reply's frames after afterSeq + 1 (its end); a reply has at most one frame per output token, so ≤ MAX_TOKENS + 1",
		BoundPosts: maxTokens + 1,
		MaxTokens:  maxTokens,
		AsExpected: true,
		Cases:      cases,
	}
	for _, c := range cases {
		rp.PostsPerFrameMax = max(rp.PostsPerFrameMax, c.WorstPerFrame)
		if c.ByResumes != c.ExpectedByResumes {
			rp.AsExpected = false
		}
	}
	return rp
}

// stopReply asks the server to stop reply messageID; an accepted stop is
// not answered, so the Reply returned stays empty unless it is refused.
func (c *client) stopReply(ctx context.Context, requestID, messageID string) (*Reply, error) {
	r := NewReply(time.Now())
	c.mu.Lock()
	c.replies[requestID] = r
	c.mu.Unlock()
	return r, c.conn.Stop(ctx, requestID, messageID)
}

// resumeEnv is a sibling dev server's environment with RESUMES_PER_MINUTE
// at n.
func resumeEnv(n int) map[string]string {
	return map[string]string{config.ResumesPerMinute: strconv.Itoa(n)}
}

// resumePostsFigure takes resume.posts_per_frame_max into r: the three
// cases on d (the default RESUMES_PER_MINUTE and MAX_TOKENS), then the
// storm again on a dev server of its own (on d's DynamoDB Local) with
// RESUMES_PER_MINUTE at its most, so that every resume of the storm reaches
// the reply rather than the rate limit.
func resumePostsFigure(ctx context.Context, o *Options, r *Results, d *DevServer, dir string) error {
	maxTokens, err := strconv.ParseInt(config.ModelDefaults[config.MaxTokens], 10, 64)
	if err != nil {
		return err
	}
	perMinute := config.DefaultResumesPerMinute
	fmt.Fprintf(o.Progress, "dev server: @connections posts per resume frame (a connection already listening, an ended reply, %d resumes of a running reply; RESUMES_PER_MINUTE=%d, then %d)\n", o.ResumeStorm, perMinute, maxResumesSetting)
	var cases []ResumeCase
	for _, run := range []struct {
		name string
		f    func() (ResumeCase, error)
	}{
		{"listening", func() (ResumeCase, error) { return d.resumeRunning(ctx, "listening", 1, perMinute) }},
		{"ended", func() (ResumeCase, error) { return d.resumeEnded(ctx, perMinute) }},
		{"storm", func() (ResumeCase, error) { return d.resumeRunning(ctx, "storm", o.ResumeStorm, perMinute) }},
	} {
		c, err := run.f()
		if err != nil {
			return fmt.Errorf("resume posts, %s: %w", run.name, err)
		}
		cases = append(cases, c)
	}
	sd, err := os.MkdirTemp(dir, "resumes-")
	if err != nil {
		return err
	}
	s, err := d.withEnv(ctx, sd, resumeEnv(maxResumesSetting))
	if err != nil {
		return err
	}
	c, err := s.resumeRunning(ctx, "storm", o.ResumeStorm, maxResumesSetting)
	if cerr := s.Close(); cerr != nil {
		r.Note("resume posts: closing the dev server with RESUMES_PER_MINUTE=%d: %v", maxResumesSetting, cerr)
	}
	if err != nil {
		return fmt.Errorf("resume posts, storm at RESUMES_PER_MINUTE=%d: %w", maxResumesSetting, err)
	}
	cases = append(cases, c)
	rp := resumePosts(maxTokens, cases)
	r.ResumePosts = rp
	for _, c := range cases {
		r.Note("resume posts, %s (RESUMES_PER_MINUTE=%d): %d resume frames, the reply's own frames %d, posts %d of which %d by the resumes (expected %d), %d rate_limited, worst %d posts for one frame",
			c.Name, c.ResumesPerMinute, c.ResumeFrames, c.ReplyFrames, c.Posts, c.ByResumes, c.ExpectedByResumes, c.RateLimited, c.WorstPerFrame)
	}
	r.Note("resume posts: posts counted at the dev server's @connections stand-in (its gateway's post counter, still for %s before and after each case), each case on a new user; a running reply is %d tokens at %d tokens/s, stopped once every resume's route has returned; the ended one is %d tokens at %d tokens/s (one frame per token)", quietPosts, runningReplyTokens, runningReplyRate, endedReplyTokens, endedReplyRate)
	return nil
}

// maxResumesSetting is the most RESUMES_PER_MINUTE takes.
const maxResumesSetting = 1000
