package uploads

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/p2/buddy/lambda/manifest"
)

// Bucket is the uploads bucket: attachments' objects, one per upload,
// under manifest.UploadKeyPrefix. The browser writes an object straight to
// S3 with a presigned POST whose policy pins its key, exact type and size
// and its pending tag; Buddy then reads it (checks, the model), retags it
// once a message carries it, and deletes it.
type Bucket struct {
	Client *s3.Client
	Name   string
}

// ErrNoObject: nothing was uploaded under the key (yet).
var ErrNoObject = errors.New("uploads: no object")

// PostTTL is how long a presigned POST may be used (S3 refuses it after).
const PostTTL = 10 * time.Minute

// GetTTL is how long a presigned GET URL (a thumbnail) may be used.
const GetTTL = 5 * time.Minute

// Key is the object key of an upload.
func Key(uploadID string) string { return manifest.UploadKeyPrefix + uploadID }

// pendingTagging is the tag set every object is written with (the POST
// policy pins it): the bucket's lifecycle expires objects so tagged.
var pendingTagging = "<Tagging><TagSet><Tag><Key>" + manifest.UploadTagKey + "</Key><Value>" + manifest.UploadTagPending + "</Value></Tag></TagSet></Tagging>"

// Post is a presigned POST: the URL and every form field the client sends
// before the file (as field "file").
type Post struct {
	URL    string            `json:"url"`
	Fields map[string]string `json:"fields"`
}

// PresignPost makes the POST that uploads exactly size bytes of
// contentType as uploadID's object, tagged pending, until expires. S3
// itself refuses any other body, type, key, tag or a late POST.
func (b Bucket) PresignPost(ctx context.Context, uploadID, contentType string, size int64, expires time.Time) (Post, error) {
	req, err := s3.NewPresignClient(b.Client).PresignPostObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(b.Name),
		Key:         aws.String(Key(uploadID)),
		ContentType: aws.String(contentType),
	}, func(o *s3.PresignPostOptions) {
		o.Expires = time.Until(expires)
		o.Conditions = []any{
			[]any{"content-length-range", size, size},
			map[string]string{"Content-Type": contentType},
			map[string]string{"tagging": pendingTagging},
		}
	})
	if err != nil {
		return Post{}, fmt.Errorf("presign upload: %w", err)
	}
	fields := make(map[string]string, len(req.Values)+2)
	for k, v := range req.Values {
		fields[k] = v
	}
	// PresignPostObject leaves out the fields its own conditions do not
	// name; the policy pins these, so the form must carry them.
	fields["Content-Type"] = contentType
	fields["tagging"] = pendingTagging
	return Post{URL: req.URL, Fields: fields}, nil
}

// PresignGet is a URL that reads uploadID's object for GetTTL.
func (b Bucket) PresignGet(ctx context.Context, uploadID string) (string, error) {
	req, err := s3.NewPresignClient(b.Client).PresignGetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(b.Name), Key: aws.String(Key(uploadID)),
	}, s3.WithPresignExpires(GetTTL))
	if err != nil {
		return "", fmt.Errorf("presign get: %w", err)
	}
	return req.URL, nil
}

// Object is what S3 holds for an upload.
type Object struct {
	Size        int64
	ContentType string
}

// Head says what S3 holds for uploadID: ErrNoObject when nothing.
func (b Bucket) Head(ctx context.Context, uploadID string) (Object, error) {
	out, err := b.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.Name), Key: aws.String(Key(uploadID))})
	if missing(err) {
		return Object{}, ErrNoObject
	}
	if err != nil {
		return Object{}, fmt.Errorf("head upload: %w", err)
	}
	return Object{Size: aws.ToInt64(out.ContentLength), ContentType: aws.ToString(out.ContentType)}, nil
}

// Open streams uploadID's object; the caller closes it.
func (b Bucket) Open(ctx context.Context, uploadID string) (io.ReadCloser, error) {
	out, err := b.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.Name), Key: aws.String(Key(uploadID))})
	if missing(err) {
		return nil, ErrNoObject
	}
	if err != nil {
		return nil, fmt.Errorf("read upload: %w", err)
	}
	return out.Body, nil
}

// Read reads uploadID's object whole, at most max bytes: what the model
// is sent (an attachment within its limit).
func (b Bucket) Read(ctx context.Context, uploadID string, max int64) ([]byte, error) {
	body, err := b.Open(ctx, uploadID)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, max+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read upload: %w", err)
	case int64(len(data)) > max:
		return nil, fmt.Errorf("read upload: over %d bytes", max)
	}
	return data, nil
}

// Spool copies uploadID's object into a temporary file, streamed, for
// checks that read it at random (a PDF's cross-reference): memory does not
// grow with the file. The caller closes and removes the file (Discard).
func (b Bucket) Spool(ctx context.Context, uploadID string) (*os.File, int64, error) {
	body, err := b.Open(ctx, uploadID)
	if err != nil {
		return nil, 0, err
	}
	defer body.Close()
	f, err := os.CreateTemp("", "upload-*")
	if err != nil {
		return nil, 0, err
	}
	n, err := io.Copy(f, body)
	if err != nil {
		Discard(f)
		return nil, 0, fmt.Errorf("read upload: %w", err)
	}
	return f, n, nil
}

// Discard closes and removes a file Spool made.
func Discard(f *os.File) {
	_ = f.Close()
	_ = os.Remove(f.Name())
}

// MarkAttached retags uploadID's object as carried by a message: the
// lifecycle no longer expires it.
func (b Bucket) MarkAttached(ctx context.Context, uploadID string) error {
	_, err := b.Client.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{
		Bucket: aws.String(b.Name), Key: aws.String(Key(uploadID)),
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String(manifest.UploadTagKey), Value: aws.String(manifest.UploadTagAttached)}}},
	})
	if err != nil {
		return fmt.Errorf("mark upload attached: %w", err)
	}
	return nil
}

// Delete deletes the uploads' objects (a missing one is no error).
func (b Bucket) Delete(ctx context.Context, uploadIDs ...string) error {
	for start := 0; start < len(uploadIDs); start += 1000 {
		var objs []types.ObjectIdentifier
		for _, id := range uploadIDs[start:min(start+1000, len(uploadIDs))] {
			objs = append(objs, types.ObjectIdentifier{Key: aws.String(Key(id))})
		}
		out, err := b.Client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(b.Name), Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)}})
		if err != nil {
			return fmt.Errorf("delete uploads: %w", err)
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) != "NoSuchKey" {
				return fmt.Errorf("delete upload %s: %s", aws.ToString(e.Key), aws.ToString(e.Message))
			}
		}
	}
	return nil
}

// missing reports an S3 answer that the object does not exist.
func missing(err error) bool {
	var nf *types.NotFound
	var nk *types.NoSuchKey
	var re interface{ HTTPStatusCode() int }
	var ae smithy.APIError
	return errors.As(err, &nf) || errors.As(err, &nk) ||
		(errors.As(err, &ae) && (ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchKey")) ||
		(errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound)
}
