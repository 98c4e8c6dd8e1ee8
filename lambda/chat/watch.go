package chat

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/p2/buddy/lambda/store"
)

// watcher follows a running reply's live record while the model streams:
// a stop, a resume (a new listener) or a delete reaches the reply through
// it whichever connection and Lambda instance they came from. It also
// stops a reply nobody has listened to for the orphan grace, and
// checkpoints the text so far.
type watcher struct {
	done chan struct{}
	quit chan struct{}
}

func (s *Service) poll() time.Duration {
	if s.Poll <= 0 {
		return DefaultPoll
	}
	return s.Poll
}

// watch starts following job's reply; cancel ends the model call with the
// reason.
func (s *Service) watch(ctx context.Context, job Job, b *broadcast, cancel context.CancelCauseFunc) *watcher {
	w := &watcher{done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(w.done)
		s.follow(ctx, job, b, cancel, w)
	}()
	return w
}

// stop ends the watch.
func (w *watcher) stop() {
	close(w.quit)
	<-w.done
}

func (s *Service) follow(ctx context.Context, job Job, b *broadcast, cancel context.CancelCauseFunc, w *watcher) {
	ctx = context.WithoutCancel(ctx)
	tick := time.NewTicker(s.poll())
	defer tick.Stop()
	var (
		alone      time.Time // since when nobody listens
		checkpoint time.Time
		stored     int // frames checkpointed
	)
	for {
		select {
		case <-w.quit:
			return
		case <-tick.C:
		}
		r, err := s.Store.GetReply(ctx, job.AssistantMessageID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			cancel(ErrDeleted)
		case err != nil:
			s.logf(ctx, "read reply", err)
		default:
			follow(b, r)
			if r.Stop {
				cancel(ErrStopped)
			}
			// Connections that are gone give up their places, so that a
			// client that reconnects often can always resume.
			if gone := slices.DeleteFunc(b.takeGone(), func(c string) bool { return c == job.ConnectionID }); len(gone) > 0 {
				if err := s.Store.RemoveListeners(ctx, job.AssistantMessageID, gone...); err != nil {
					s.logf(ctx, "remove listeners", err)
				}
			}
		}
		now := s.now()
		switch {
		case b.Live() > 0:
			alone = time.Time{}
		case alone.IsZero():
			alone = now
		case now.Sub(alone) >= s.Config.OrphanGrace:
			cancel(ErrOrphaned)
		}
		if now.Sub(checkpoint) >= checkpointEvery {
			if text, frames := b.Snapshot(); len(frames) > stored {
				if err := s.Store.CheckpointReply(ctx, job.ConversationID, job.AssistantMessageID, text, frames); err != nil && !errors.Is(err, store.ErrNotFound) {
					s.logf(ctx, "checkpoint reply", err)
				}
				checkpoint, stored = now, len(frames)
			}
		}
	}
}

// follow adds r's listeners that b does not follow yet.
func follow(b *broadcast, r store.Reply) {
	for _, l := range r.Listeners {
		b.Follow(l.ConnectionID, l.RequestID, l.AfterSeq)
	}
}

func (s *Service) logf(ctx context.Context, what string, err error) {
	if s.Log != nil {
		s.Log.LogAttrs(ctx, slog.LevelWarn, what+" failed", slog.String("error", err.Error()))
	}
}
