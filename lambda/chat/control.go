package chat

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/wsapi"
)

// Stop asks the user's running reply f.MessageID to stop. The reply's own
// job, wherever it runs, notices within a poll, cancels the model call,
// stores what was produced and ends the stream with stopReason "stopped".
// A reply that already ended is left as it is.
func (s *Service) Stop(ctx context.Context, userID string, f wsapi.ClientFrame) *Reject {
	if !ids.Valid(f.MessageID) {
		return replyNotFound()
	}
	err := s.Store.RequestStop(ctx, userID, f.MessageID)
	switch {
	case err == nil, errors.Is(err, store.ErrEnded):
		return nil
	case errors.Is(err, store.ErrNotFound):
		return replyNotFound()
	case errors.Is(err, store.ErrContention):
		return busy(err)
	}
	return reject(errcode.Internal, "could not stop the reply", err)
}

func replyNotFound() *Reject { return reject(errcode.NotFound, "reply not found", nil) }

// DefaultReplayBudget bounds how long a resume of an ended reply posts
// its frames inside the route's invocation (API Gateway stops waiting at
// 29 s): what is left is for another resume.
const DefaultReplayBudget = 10 * time.Second

func (s *Service) replayBudget() time.Duration {
	if s.ReplayBudget <= 0 {
		return DefaultReplayBudget
	}
	return s.ReplayBudget
}

// Resume sends connectionID the frames of the user's reply f.MessageID
// after f.AfterSeq, then the rest. A running reply gets the connection as
// a listener (its job catches it up from the frames it holds, then sends
// it the live ones); an ended one is replayed here from the stored
// message, which keeps how its text was cut into frames. A user's resumes
// are counted (ResumesPerMinute), and a connection that follows the reply
// already changes nothing.
func (s *Service) Resume(ctx context.Context, userID, connectionID, endpoint string, f wsapi.ClientFrame) *Reject {
	if !ids.Valid(f.MessageID) {
		return replyNotFound()
	}
	switch err := s.Store.CountResume(ctx, userID, s.Config.ResumesPerMinute); {
	case errors.Is(err, store.ErrRateLimited):
		r := reject(errcode.RateLimited, fmt.Sprintf("at most %d resumes a minute; try again in a minute", s.Config.ResumesPerMinute), nil)
		r.RetryAfter = time.Minute
		return r
	case errors.Is(err, store.ErrContention):
		return busy(err)
	case err != nil:
		return reject(errcode.Internal, "could not resume the reply", err)
	}
	r, err := s.Store.AddListener(ctx, userID, f.MessageID, store.Listener{ConnectionID: connectionID, RequestID: f.RequestID, AfterSeq: f.AfterSeq})
	switch {
	case err == nil, errors.Is(err, store.ErrListening):
		return nil
	case errors.Is(err, store.ErrEnded):
		return s.replay(ctx, r, connectionID, endpoint, f)
	case errors.Is(err, store.ErrNotFound):
		return replyNotFound()
	case errors.Is(err, store.ErrRateLimited):
		return reject(errcode.RateLimited, fmt.Sprintf("%d connections follow this reply already; close one and resume again", store.MaxListeners), nil)
	case errors.Is(err, store.ErrContention):
		return busy(err)
	}
	return reject(errcode.Internal, "could not resume the reply", err)
}

// replay sends an ended reply's frames after f.AfterSeq and its end, for
// at most the replay budget: a reply has at most one frame per token of its
// max tokens, so one resume posts at most that many frames plus one. When
// the budget runs out first the client is told where to resume from.
func (s *Service) replay(ctx context.Context, r store.Reply, connectionID, endpoint string, f wsapi.ClientFrame) *Reject {
	m, err := s.Store.GetMessage(ctx, r.UserID, r.ConversationID, r.MessageID)
	if errors.Is(err, store.ErrNotFound) {
		return replyNotFound()
	}
	if err != nil {
		return reject(errcode.Internal, "could not read the reply", err)
	}
	job := Job{ConversationID: r.ConversationID, AssistantMessageID: r.MessageID}
	frame := frameFor(job)
	l := &listener{connectionID: connectionID, requestID: f.RequestID}
	poster := s.poster(endpoint)
	until := time.Now().Add(s.replayBudget())
	for seq, fr := range storedFrames(m) {
		if seq <= f.AfterSeq {
			continue
		}
		if time.Now().After(until) {
			rej := reject(errcode.RateLimited, fmt.Sprintf("the replay stopped after seq %d; resume with afterSeq %d for the rest", seq-1, seq-1), nil)
			rej.RetryAfter = time.Second
			return rej
		}
		if err := poster.Post(ctx, connectionID, wsapi.Encode(frame(l, seq, fr.frame, fr.text))); err != nil {
			return nil // the client left again; it can resume again
		}
	}
	e := ended{status: m.Status, stopReason: m.StopReason}
	if m.Status == store.StatusFailed || m.ErrorCode != "" {
		e.code, e.msg = m.ErrorCode, failureMessage(m.ErrorCode)
	}
	_ = poster.Post(ctx, connectionID, wsapi.Encode(endFrame(job, f.RequestID, m, e)))
	return nil
}

// failureMessage is what a replayed failed reply's error frame says.
func failureMessage(code string) string {
	switch code {
	case errcode.UpstreamError, errcode.RateLimited:
		return "the model could not finish this reply"
	case errcode.NotFound:
		return "the conversation was deleted"
	}
	return "this reply failed; send the message again"
}

type storedFrame struct {
	frame store.Frame
	text  string
}

// storedFrames cuts a stored reply's text back into its frames. A message
// stored before frames were kept (or whose frames do not add up to its
// text) is cut the way a burst would be.
func storedFrames(m store.Message) []storedFrame {
	if out, ok := cut(m.Frames, m.Text, m.Thinking); ok {
		return out
	}
	var out []storedFrame
	for _, chunk := range wsapi.SplitText(m.Text, wsapi.MaxDeltaTextBytes) {
		out = append(out, storedFrame{store.Frame{Bytes: len(chunk)}, chunk})
	}
	return out
}

// cut splits answer and thinking by frames; ok only when the frames use
// up both texts exactly.
func cut(frames []store.Frame, answer, thinking string) (out []storedFrame, ok bool) {
	for _, f := range frames {
		src := &answer
		if f.Thinking {
			src = &thinking
		}
		if f.Bytes > len(*src) {
			return nil, false
		}
		out = append(out, storedFrame{f, (*src)[:f.Bytes]})
		*src = (*src)[f.Bytes:]
	}
	return out, answer == "" && thinking == ""
}

// Unstarted fails a reply whose job never ran (the dispatch failed, or
// Lambda gave up on the invocation and handed it to the failure
// destination) and tells everyone following it. A job that did run
// settles itself: then nothing happens here.
func (s *Service) Unstarted(ctx context.Context, job Job) error {
	err := s.Store.FailUnstarted(ctx, job.reply(), errcode.Internal)
	switch {
	case errors.Is(err, store.ErrClaimed), errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	r, err := s.Store.GetReply(ctx, job.AssistantMessageID)
	if err != nil {
		r = job.reply()
	}
	poster := s.poster(job.Endpoint)
	for _, l := range listenersOf(job, r) {
		postError(ctx, job, poster, l.ConnectionID, l.RequestID, errcode.Internal, "the reply could not be started; send the message again")
	}
	return nil
}
