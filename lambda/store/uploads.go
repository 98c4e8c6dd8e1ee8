package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/manifest"
)

// Uploads: a user's attachments, keyed by user and upload id, so another
// user's id is simply not found. An upload is pending until its object is
// checked, then ready or rejected; a message that carries it sets its
// conversation, and from then on it is deleted with that conversation.
// Until then it expires (TTL), like its object (the bucket's lifecycle).

// Upload statuses.
const (
	UploadPending  = "pending"
	UploadReady    = "ready"
	UploadRejected = "rejected"
)

// Errors of the upload calls.
var (
	// ErrAttached: a message carries the upload (it goes with its
	// conversation), or it belongs to another conversation.
	ErrAttached = errors.New("store: the upload is attached to a message")
	// ErrNotReady: the upload is not (or no longer) pending or ready as
	// the call needs.
	ErrNotReady = errors.New("store: the upload is not ready")
)

// Upload is one attachment's record.
type Upload struct {
	UserID      string `dynamodbav:"userId"`
	UploadID    string `dynamodbav:"uploadId"`
	Name        string `dynamodbav:"name"`
	ContentType string `dynamodbav:"contentType"`
	Size        int64  `dynamodbav:"size"`
	Status      string `dynamodbav:"status"`
	// What the checks found: an image's size in pixels, a PDF's pages;
	// Reason says why a rejected upload was.
	Width  int    `dynamodbav:"width,omitempty"`
	Height int    `dynamodbav:"height,omitempty"`
	Pages  int    `dynamodbav:"pages,omitempty"`
	Reason string `dynamodbav:"reason,omitempty"`
	// ConversationID is the conversation whose message carries it.
	ConversationID string    `dynamodbav:"conversationId,omitempty"`
	CreatedAt      time.Time `dynamodbav:"createdAt"`
	// ExpiresAt is when an upload no message carries is forgotten (TTL);
	// zero once one does.
	ExpiresAt time.Time `dynamodbav:"expiresAt,unixtime,omitempty"`
}

// Attachment is an upload as a message carries it: what a client shows
// and the model is told, copied when the message is sent.
type Attachment struct {
	ID          string `dynamodbav:"id" json:"id"`
	Name        string `dynamodbav:"name" json:"name"`
	ContentType string `dynamodbav:"contentType" json:"contentType"`
	Size        int64  `dynamodbav:"size" json:"size"`
	Width       int    `dynamodbav:"width,omitempty" json:"width,omitempty"`
	Height      int    `dynamodbav:"height,omitempty" json:"height,omitempty"`
	Pages       int    `dynamodbav:"pages,omitempty" json:"pages,omitempty"`
}

// Attachment is the upload as a message carries it.
func (u Upload) Attachment() Attachment {
	return Attachment{ID: u.UploadID, Name: u.Name, ContentType: u.ContentType, Size: u.Size, Width: u.Width, Height: u.Height, Pages: u.Pages}
}

func uploadKey(userID, uploadID string) item {
	return item{manifest.AttrUserID: attrS(userID), manifest.AttrUploadID: attrS(uploadID)}
}

// uploadsKey is the usage table's sort key of a user's upload counter for
// a day.
func uploadsKey(day string) string { return "uploads#" + day }

const attrUploads = "uploads"

func checkUpload(u Upload) error {
	var r rules
	r.id("user id", u.UserID)
	r.id("upload id", u.UploadID)
	r.field("name", u.Name, maxFieldBytes)
	r.field("content type", u.ContentType, maxFieldBytes)
	if u.Size < 1 {
		r.errs = append(r.errs, fmt.Sprintf("size %d is below 1", u.Size))
	}
	r.time("createdAt", u.CreatedAt)
	return r.err()
}

// CreateUpload stores a pending upload and counts it on the user's day,
// in one transaction: ErrLimit when the day has seen perDay already,
// ErrExists for an id taken.
func (d *Dynamo) CreateUpload(ctx context.Context, u Upload, day string, perDay int) error {
	u.Status = UploadPending
	if err := errors.Join(checkUpload(u), checkReserve(u.UserID, day)); err != nil {
		return err
	}
	var tx txn
	record := tx.add(putItem(d.tables.Uploads, marshal(u), notExists(manifest.AttrUploadID)))
	counted := tx.add(updateItem(d.tables.Usage, usageKey(u.UserID, uploadsKey(day)),
		expression.Add(expression.Name(attrUploads), expression.Value(1)),
		expression.AttributeNotExists(expression.Name(attrUploads)).Or(expression.Name(attrUploads).LessThan(expression.Value(perDay)))))
	failed, err := d.transact(ctx, "create upload", &tx)
	switch {
	case err != nil || failed == nil:
		return err
	case failed[record]:
		return ErrExists
	case failed[counted]:
		return ErrLimit
	}
	return ErrExists
}

// GetUpload reads one of the user's uploads, consistently; an expired one
// (TTL deletes late) is not found.
func (d *Dynamo) GetUpload(ctx context.Context, userID, uploadID string) (Upload, error) {
	if !findable(userID, uploadID) {
		return Upload{}, ErrNotFound
	}
	it, err := d.getOne(ctx, d.tables.Uploads, uploadKey(userID, uploadID), "get upload")
	if err != nil {
		return Upload{}, err
	}
	return d.liveUpload(it)
}

func (d *Dynamo) liveUpload(it item) (Upload, error) {
	u, err := unmarshal[Upload](it)
	if err != nil {
		return Upload{}, err
	}
	if !u.ExpiresAt.IsZero() && !d.now().Before(u.ExpiresAt) {
		return Upload{}, ErrNotFound
	}
	u.CreatedAt, u.ExpiresAt = u.CreatedAt.UTC(), u.ExpiresAt.UTC()
	return u, nil
}

// GetUploads reads the user's uploads ids, consistently, in one round trip
// (BatchGetItem): in the order asked, ErrNotFound naming the first that
// does not exist (or is another user's).
func (d *Dynamo) GetUploads(ctx context.Context, userID string, ids []string) ([]Upload, error) {
	keys := make([]item, 0, len(ids))
	for _, id := range ids {
		if !findable(userID, id) {
			return nil, fmt.Errorf("%w: upload %q", ErrNotFound, id)
		}
		keys = append(keys, uploadKey(userID, id))
	}
	found := map[string]Upload{}
	pending := map[string]types.KeysAndAttributes{d.tables.Uploads: {Keys: keys, ConsistentRead: aws.Bool(true)}}
	for attempt := 1; len(pending) > 0; attempt++ {
		out, err := d.api.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
		if err != nil {
			return nil, wrap("get uploads", err)
		}
		for _, it := range out.Responses[d.tables.Uploads] {
			u, err := d.liveUpload(it)
			if err == nil {
				found[u.UploadID] = u
			} else if !errors.Is(err, ErrNotFound) {
				return nil, err
			}
		}
		pending = out.UnprocessedKeys
		if len(pending) > 0 {
			if attempt == batchAttempts {
				return nil, wrap("get uploads", errors.New("keys left unprocessed after retries"))
			}
			if err := d.pause(ctx, jitter(batchBackoff)); err != nil {
				return nil, wrap("get uploads", err)
			}
		}
	}
	out := make([]Upload, len(ids))
	for i, id := range ids {
		u, ok := found[id]
		if !ok {
			return nil, fmt.Errorf("%w: upload %q", ErrNotFound, id)
		}
		out[i] = u
	}
	return out, nil
}

// SettleUpload records what the checks of a pending upload found: status
// ready (with its size in pixels or pages) or rejected (with the reason).
// ErrNotReady: it was checked already (the record as it is comes back);
// ErrNotFound: it is not the user's, or gone.
func (d *Dynamo) SettleUpload(ctx context.Context, u Upload) (Upload, error) {
	if !findable(u.UserID, u.UploadID) {
		return Upload{}, ErrNotFound
	}
	if u.Status != UploadReady && u.Status != UploadRejected {
		return Upload{}, invalid("upload status %q is neither %q nor %q", u.Status, UploadReady, UploadRejected)
	}
	update := expression.Set(expression.Name(attrStatus), expression.Value(u.Status))
	for _, f := range []struct {
		attr string
		v    int
	}{{"width", u.Width}, {"height", u.Height}, {"pages", u.Pages}} {
		if f.v > 0 {
			update = update.Set(expression.Name(f.attr), expression.Value(f.v))
		}
	}
	update = setOrRemove(update, "reason", u.Reason)
	it, err := d.update(ctx, d.tables.Uploads, uploadKey(u.UserID, u.UploadID), update,
		exists(manifest.AttrUploadID).And(expression.Name(attrStatus).Equal(expression.Value(UploadPending))), types.ReturnValueAllNew)
	if conditionFailed(err) {
		now, err := d.GetUpload(ctx, u.UserID, u.UploadID)
		if err != nil {
			return Upload{}, err
		}
		return now, ErrNotReady
	}
	if err != nil {
		return Upload{}, wrap("settle upload", err)
	}
	return d.liveUpload(it)
}

// DeleteUpload deletes an upload no message carries. ErrAttached: one
// does (it goes with its conversation); ErrNotFound: none of the user's.
func (d *Dynamo) DeleteUpload(ctx context.Context, userID, uploadID string) error {
	if !findable(userID, uploadID) {
		return ErrNotFound
	}
	err := d.del(ctx, d.tables.Uploads, uploadKey(userID, uploadID),
		exists(manifest.AttrUploadID).And(expression.AttributeNotExists(expression.Name(manifest.AttrConversationID))))
	if conditionFailed(err) {
		if _, err := d.GetUpload(ctx, userID, uploadID); err != nil {
			return err
		}
		return ErrAttached
	}
	if err != nil {
		return wrap("delete upload", err)
	}
	return nil
}

// attachUpload is the acceptance's write of an upload a message carries:
// the upload must be the user's, ready, and of no other conversation; it
// then belongs to this one and no longer expires.
func (d *Dynamo) attachUpload(userID, conversationID, uploadID string) (types.TransactWriteItem, error) {
	mine := expression.AttributeNotExists(expression.Name(manifest.AttrConversationID)).
		Or(expression.Name(manifest.AttrConversationID).Equal(expression.Value(conversationID)))
	return updateItem(d.tables.Uploads, uploadKey(userID, uploadID),
		expression.Set(expression.Name(manifest.AttrConversationID), expression.Value(conversationID)).
			Remove(expression.Name(manifest.AttrExpiresAt)),
		exists(manifest.AttrUploadID).And(expression.Name(attrStatus).Equal(expression.Value(UploadReady))).And(mine))
}

// whyNotAttached says why an upload's attachment failed: ErrNotFound,
// ErrNotReady or ErrAttached (to another conversation).
func (d *Dynamo) whyNotAttached(ctx context.Context, userID, conversationID, uploadID string) error {
	u, err := d.GetUpload(ctx, userID, uploadID)
	switch {
	case err != nil:
		return fmt.Errorf("%w: upload %q", err, uploadID)
	case u.Status != UploadReady:
		return fmt.Errorf("%w: upload %q is %s", ErrNotReady, uploadID, u.Status)
	case u.ConversationID != "" && u.ConversationID != conversationID:
		return fmt.Errorf("%w: upload %q belongs to another conversation", ErrAttached, uploadID)
	}
	return fmt.Errorf("%w: upload %q changed meanwhile", ErrNotReady, uploadID)
}

// deleteUploads deletes the records of uploads of a user's conversation
// that is being deleted (their objects were deleted first by the caller).
func (d *Dynamo) deleteUploads(ctx context.Context, userID string, uploadIDs []string) error {
	for start := 0; start < len(uploadIDs); start += batchSize {
		var keys []item
		for _, id := range uploadIDs[start:min(start+batchSize, len(uploadIDs))] {
			if findable(userID, id) {
				keys = append(keys, uploadKey(userID, id))
			}
		}
		if err := d.batchDelete(ctx, d.tables.Uploads, keys); err != nil {
			return err
		}
	}
	return nil
}
