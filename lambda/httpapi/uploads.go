package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/uploads"
)

// UploadJSON is an upload on the wire.
type UploadJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	// Status is pending, ready or rejected.
	Status string `json:"status"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	Pages  int    `json:"pages,omitempty"`
	// Reason says why a rejected upload was.
	Reason string `json:"reason,omitempty"`
	// ExpiresAt is when the upload stops being usable unless acted on: a
	// pending one when its POST expires, a ready one no message carries
	// when it is forgotten; none once a message carries it.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// URL reads a ready upload's bytes (presigned, uploads.GetTTL).
	URL string `json:"url,omitempty"`
}

// Uploads serves /uploads: attachments, uploaded by the browser straight
// to S3 with a presigned POST and checked here before a message may carry
// them.
type Uploads struct {
	Store  store.Store
	Bucket uploads.Bucket
	Limits uploads.Limits
	// PerDay is how many uploads a user may start a UTC day.
	PerDay int
	Now    func() time.Time
}

// Routes returns the route table.
func (u *Uploads) Routes() map[string]HandlerFunc {
	return map[string]HandlerFunc{
		manifest.RouteCreateUpload:   u.create,
		manifest.RouteCompleteUpload: u.complete,
		manifest.RouteGetUpload:      u.get,
		manifest.RouteDeleteUpload:   u.delete,
	}
}

// unattachedFor is how long an upload no message carries is kept.
const unattachedFor = manifest.UploadExpiryDays * 24 * time.Hour

func (u *Uploads) uploadJSON(ctx context.Context, up store.Upload) (UploadJSON, error) {
	j := UploadJSON{
		ID: up.UploadID, Name: up.Name, ContentType: up.ContentType, Size: up.Size, Status: up.Status,
		Width: up.Width, Height: up.Height, Pages: up.Pages, Reason: up.Reason,
	}
	switch {
	case up.Status == store.UploadPending:
		t := up.CreatedAt.Add(uploads.PostTTL).UTC()
		j.ExpiresAt = &t
	case up.ConversationID == "" && !up.ExpiresAt.IsZero():
		t := up.ExpiresAt.UTC()
		j.ExpiresAt = &t
	}
	if up.Status == store.UploadReady {
		url, err := u.Bucket.PresignGet(ctx, up.UploadID)
		if err != nil {
			return UploadJSON{}, err
		}
		j.URL = url
	}
	return j, nil
}

func (u *Uploads) create(ctx context.Context, r *Request) (Response, *Error) {
	var in struct {
		Name        *string `json:"name"`
		ContentType *string `json:"contentType"`
		Size        *int64  `json:"size"`
	}
	if e := r.Decode(&in); e != nil {
		return Response{}, e
	}
	if in.Name == nil || in.ContentType == nil || in.Size == nil {
		return Response{}, Errorf(http.StatusBadRequest, errcode.BadRequest, "name, contentType and size are required")
	}
	if err := uploads.Declare(*in.Name, *in.ContentType, *in.Size, u.Limits); err != nil {
		status, code := http.StatusBadRequest, errcode.BadRequest
		if errors.Is(err, uploads.ErrSize) {
			status, code = http.StatusRequestEntityTooLarge, errcode.TooLarge
		}
		return Response{}, Errorf(status, code, "%s", err.Error())
	}
	at := now(u.Now)
	up := store.Upload{
		UserID: r.User, UploadID: ids.New(), Name: *in.Name, ContentType: *in.ContentType, Size: *in.Size,
		Status: store.UploadPending, CreatedAt: at, ExpiresAt: at.Add(unattachedFor),
	}
	post, err := u.Bucket.PresignPost(ctx, up.UploadID, up.ContentType, up.Size, at.Add(uploads.PostTTL))
	if err != nil {
		return Response{}, Internal(err)
	}
	switch err := u.Store.CreateUpload(ctx, up, at.UTC().Format(time.DateOnly), u.PerDay); {
	case errors.Is(err, store.ErrLimit):
		return Response{}, Errorf(http.StatusTooManyRequests, errcode.RateLimited, "at most %d uploads a day; the count resets at 00:00 UTC", u.PerDay)
	case err != nil:
		return Response{}, Internal(err)
	}
	j, err := u.uploadJSON(ctx, up)
	if err != nil {
		return Response{}, Internal(err)
	}
	return Response{Status: http.StatusCreated, Body: map[string]any{"upload": j, "post": post}}, nil
}

// load reads the {id} upload of the caller's.
func (u *Uploads) load(ctx context.Context, r *Request) (store.Upload, *Error) {
	id, e := r.ID("upload")
	if e != nil {
		return store.Upload{}, e
	}
	up, err := u.Store.GetUpload(ctx, r.User, id)
	if err != nil {
		return store.Upload{}, storeError(err, "upload")
	}
	return up, nil
}

func (u *Uploads) answer(ctx context.Context, status int, up store.Upload) (Response, *Error) {
	j, err := u.uploadJSON(ctx, up)
	if err != nil {
		return Response{}, Internal(err)
	}
	return Response{Status: status, Body: map[string]any{"upload": j}}, nil
}

func (u *Uploads) get(ctx context.Context, r *Request) (Response, *Error) {
	up, e := u.load(ctx, r)
	if e != nil {
		return Response{}, e
	}
	return u.answer(ctx, http.StatusOK, up)
}

// rejected is the answer for an upload whose checks failed: it names the
// reason, as the stored upload does.
func rejected(up store.Upload) *Error {
	return Errorf(http.StatusBadRequest, errcode.BadRequest, "upload rejected: %s", up.Reason)
}

// complete checks what arrived in S3 for a pending upload: the object
// exists with the declared size and type, its bytes are that type, an
// image's header is sound and within 8000 px a side, a PDF is not
// encrypted and within the page limit. Then it is ready; otherwise its
// object is deleted and it is rejected, with the reason. Completing again
// answers what the first completion decided.
func (u *Uploads) complete(ctx context.Context, r *Request) (Response, *Error) {
	up, e := u.load(ctx, r)
	if e != nil {
		return Response{}, e
	}
	switch up.Status {
	case store.UploadReady:
		return u.answer(ctx, http.StatusOK, up)
	case store.UploadRejected:
		return Response{}, rejected(up)
	}
	obj, err := u.Bucket.Head(ctx, up.UploadID)
	if errors.Is(err, uploads.ErrNoObject) {
		return Response{}, Errorf(http.StatusBadRequest, errcode.BadRequest, "nothing was uploaded yet: POST the file to the upload's post.url first")
	}
	if err != nil {
		return Response{}, Internal(err)
	}
	found, err := u.inspect(ctx, up, obj)
	var refusal error
	if errors.Is(err, uploads.ErrContent) {
		refusal, err = err, nil
	}
	if err != nil {
		return Response{}, Internal(err)
	}
	settled := store.Upload{UserID: up.UserID, UploadID: up.UploadID, Status: store.UploadReady, Width: found.Width, Height: found.Height, Pages: found.Pages}
	if refusal != nil {
		// Nothing half-made is kept: the object goes before the record
		// says rejected.
		if err := u.Bucket.Delete(ctx, up.UploadID); err != nil {
			return Response{}, Internal(err)
		}
		settled = store.Upload{UserID: up.UserID, UploadID: up.UploadID, Status: store.UploadRejected, Reason: refusal.Error()}
	}
	decided, err := u.Store.SettleUpload(ctx, settled)
	if err != nil && !errors.Is(err, store.ErrNotReady) {
		return Response{}, storeError(err, "upload")
	}
	// Completed concurrently: decided is what was, either way.
	if decided.Status == store.UploadRejected {
		return Response{}, rejected(decided)
	}
	return u.answer(ctx, http.StatusOK, decided)
}

// inspect runs the checks of what arrived; an ErrContent error says why it
// is refused.
func (u *Uploads) inspect(ctx context.Context, up store.Upload, obj uploads.Object) (uploads.Inspection, error) {
	switch {
	case obj.Size != up.Size:
		return uploads.Inspection{}, fmt.Errorf("%w: %d bytes arrived, %d were declared", uploads.ErrContent, obj.Size, up.Size)
	case obj.ContentType != up.ContentType:
		return uploads.Inspection{}, fmt.Errorf("%w: it was stored as %q, %q was declared", uploads.ErrContent, obj.ContentType, up.ContentType)
	case up.ContentType == uploads.PDF:
		f, size, err := u.Bucket.Spool(ctx, up.UploadID)
		if err != nil {
			return uploads.Inspection{}, err
		}
		defer uploads.Discard(f)
		return uploads.InspectPDF(f, size, u.Limits.PDFPages)
	}
	body, err := u.Bucket.Open(ctx, up.UploadID)
	if err != nil {
		return uploads.Inspection{}, err
	}
	defer body.Close()
	return uploads.InspectImage(body, up.ContentType)
}

// delete deletes an upload no message carries; one a message carries goes
// with its conversation. The record goes first, conditional on no message
// carrying it, so a message sent meanwhile keeps its object; an object
// left behind by a failure here is still tagged pending and expires.
func (u *Uploads) delete(ctx context.Context, r *Request) (Response, *Error) {
	id, e := r.ID("upload")
	if e != nil {
		return Response{}, e
	}
	switch err := u.Store.DeleteUpload(ctx, r.User, id); {
	case errors.Is(err, store.ErrAttached):
		return Response{}, attachedUpload()
	case err != nil:
		return Response{}, storeError(err, "upload")
	}
	if err := u.Bucket.Delete(ctx, id); err != nil {
		return Response{}, Internal(err)
	}
	return Response{Status: http.StatusNoContent}, nil
}

func attachedUpload() *Error {
	return Errorf(http.StatusBadRequest, errcode.BadRequest, "a message carries this upload; it is deleted with its conversation")
}
