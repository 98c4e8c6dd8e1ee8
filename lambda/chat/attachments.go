package chat

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/uploads"
	"github.com/p2/buddy/lambda/wsapi"
)

// Objects is where attachments' bytes are (uploads.Bucket): read for the
// model, and marked attached so the bucket's lifecycle keeps them.
type Objects interface {
	Read(ctx context.Context, uploadID string, max int64) ([]byte, error)
	MarkAttached(ctx context.Context, uploadID string) error
}

// Provider request sizes: what a whole request may be on the wire, the
// attachments base64 in it. The Anthropic API takes 32 MB; Bedrock's
// InvokeModel documents 20 MB. Room is kept for the rest of the body.
const (
	anthropicRequestBytes = 32 << 20
	bedrockRequestBytes   = 20 << 20
	requestRoom           = 1 << 20
)

// requestLimit is the bytes of text and base64 attachments a request to
// the configured provider may carry.
func (s *Service) requestLimit() int64 {
	if s.Config.Model.Provider == config.ProviderBedrock {
		return bedrockRequestBytes - requestRoom
	}
	return anthropicRequestBytes - requestRoom
}

// attachmentTokens is what attachments count in the model's input, by
// Anthropic's published estimates (uploads.Tokens).
func attachmentTokens(as []store.Attachment) int64 {
	var n int64
	for _, a := range as {
		n += uploads.Tokens(a.ContentType, a.Width, a.Height, a.Pages)
	}
	return n
}

// wireBytes is what attachments take in a request: their bytes, base64.
func wireBytes(as []store.Attachment) int64 {
	var n int64
	for _, a := range as {
		n += (a.Size + 2) / 3 * 4
	}
	return n
}

// readUploads reads the uploads a sendMessage names; nil when it names
// none.
func (s *Service) readUploads(ctx context.Context, userID string, f wsapi.ClientFrame) ([]store.Upload, *Reject) {
	if len(f.Attachments) == 0 {
		return nil, nil
	}
	for _, id := range f.Attachments {
		if !ids.Valid(id) {
			return nil, uploadNotFound(id)
		}
	}
	ups, err := s.Store.GetUploads(ctx, userID, f.Attachments)
	if errors.Is(err, store.ErrNotFound) {
		return nil, reject(errcode.NotFound, "an attachment was not found: upload it again", nil)
	}
	if err != nil {
		return nil, reject(errcode.Internal, "could not read the attachments", err)
	}
	return ups, nil
}

func uploadNotFound(id string) *Reject {
	return reject(errcode.NotFound, fmt.Sprintf("upload %q not found", id), nil)
}

// attach checks the uploads a message into conversationID carries (each
// ready, and of no other conversation) and that the message alone fits a
// request, and returns them as the message carries them.
func (s *Service) attach(ups []store.Upload, conversationID, text string) ([]store.Attachment, *Reject) {
	if len(ups) == 0 {
		return nil, nil
	}
	out := make([]store.Attachment, len(ups))
	for i, u := range ups {
		switch {
		case u.Status != store.UploadReady:
			return nil, reject(errcode.BadRequest, fmt.Sprintf("upload %q is %s: complete it (POST /uploads/{id}/complete) and attach it once ready", u.UploadID, u.Status), nil)
		case u.ConversationID != "" && u.ConversationID != conversationID:
			return nil, reject(errcode.BadRequest, fmt.Sprintf("upload %q belongs to another conversation; upload the file again", u.UploadID), nil)
		}
		out[i] = u.Attachment()
	}
	own := int64(2*turnOverhead+len(text)) + attachmentTokens(out)
	if room := contextTokens - s.Config.Model.MaxTokens; own > room {
		return nil, reject(errcode.TooLarge, fmt.Sprintf("this message needs some %d tokens with its attachments, more than the %d the model takes beside its reply; send fewer or smaller files", own, room), nil)
	}
	if wire := int64(len(text)) + wireBytes(out); wire > s.requestLimit() {
		return nil, reject(errcode.TooLarge, fmt.Sprintf("this message's attachments take %d bytes in a request, more than the %d the model's API takes; send fewer or smaller files", wire, s.requestLimit()), nil)
	}
	return out, nil
}

// attachmentLoad is one attachment to read into the turn that sends it.
type attachmentLoad struct {
	from store.Attachment
	into *claude.Attachment
}

// loadConcurrency bounds the attachments read at once.
const loadConcurrency = 8

// load reads the attachments' bytes side by side; an object that cannot be
// read fails the whole request (the reply ends with an error, nothing of
// it stored).
func (s *Service) load(ctx context.Context, loads []attachmentLoad) error {
	if len(loads) == 0 {
		return nil
	}
	if s.Objects == nil {
		return errors.New("chat: no bucket to read attachments from")
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, loadConcurrency)
	)
	for _, l := range loads {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			data, err := s.Objects.Read(ctx, l.from.ID, l.from.Size)
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("attachment %s: %w", l.from.ID, err))
				mu.Unlock()
				return
			}
			l.into.Data = data
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// markAttached retags the uploads a reply's own message carries, so the
// bucket's lifecycle keeps them; a failure is logged (the object would
// expire in a day) and does not stop the reply.
func (s *Service) markAttached(ctx context.Context, as []store.Attachment) {
	for _, a := range as {
		if err := s.Objects.MarkAttached(ctx, a.ID); err != nil {
			s.logf(ctx, "mark upload attached", err)
		}
	}
}
