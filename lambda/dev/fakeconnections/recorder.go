package fakeconnections

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Post is one delivered post.
type Post struct {
	ConnectionID string
	Data         []byte
	// At is when the post arrived, before OnPost ran.
	At time.Time
}

// Recorder is a Connections that keeps every post instead of delivering
// it: every connection id is open until Close or a DeleteConnection. The
// zero value is ready to use.
type Recorder struct {
	// OnPost, when set, sees each post on the request's goroutine before
	// the poster gets its 200, as a real post returns only after API
	// Gateway took the frame. Set it before the first post.
	OnPost func(Post)

	mu      sync.Mutex
	posts   []Post
	first   map[string]time.Time // connection id → first post
	gone    map[string]bool
	changed chan struct{} // closed and replaced at every post
}

var _ Connections = (*Recorder)(nil)

// Post records data for connectionID.
func (r *Recorder) Post(_ context.Context, connectionID string, data []byte) error {
	p := Post{ConnectionID: connectionID, Data: slices.Clone(data), At: time.Now()}
	r.mu.Lock()
	if r.gone[connectionID] {
		r.mu.Unlock()
		return ErrGone
	}
	if r.first == nil {
		r.first = map[string]time.Time{}
	}
	if _, ok := r.first[connectionID]; !ok {
		r.first[connectionID] = p.At
	}
	r.posts = append(r.posts, p)
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	hook := r.OnPost
	r.mu.Unlock()
	if hook != nil {
		hook(p)
	}
	return nil
}

// Get describes an open connection from its posts; the recorder knows no
// client, so the identity is loopback's.
func (r *Recorder) Get(_ context.Context, connectionID string) (Info, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone[connectionID] {
		return Info{}, ErrGone
	}
	info := Info{ConnectedAt: r.first[connectionID], SourceIP: "127.0.0.1"}
	for _, p := range r.posts {
		if p.ConnectionID == connectionID {
			info.LastActiveAt = p.At
		}
	}
	return info, nil
}

// Delete closes the connection: later posts answer 410.
func (r *Recorder) Delete(_ context.Context, connectionID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone[connectionID] {
		return ErrGone
	}
	r.close(connectionID)
	return nil
}

// Close makes connectionID gone, as when its client leaves.
func (r *Recorder) Close(connectionID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.close(connectionID)
}

func (r *Recorder) close(connectionID string) {
	if r.gone == nil {
		r.gone = map[string]bool{}
	}
	r.gone[connectionID] = true
}

// Posts returns every post so far, in arrival order.
func (r *Recorder) Posts() []Post {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.posts)
}

// PostsTo returns the posts to connectionID so far, in arrival order.
func (r *Recorder) PostsTo(connectionID string) []Post {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Post
	for _, p := range r.posts {
		if p.ConnectionID == connectionID {
			out = append(out, p)
		}
	}
	return out
}

// Wait blocks until done holds for the posts to connectionID, checking at
// every new post, or until ctx ends.
func (r *Recorder) Wait(ctx context.Context, connectionID string, done func([]Post) bool) error {
	for {
		r.mu.Lock()
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		changed := r.changed
		r.mu.Unlock()
		if done(r.PostsTo(connectionID)) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
