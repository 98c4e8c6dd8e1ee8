package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/rie"
	"github.com/p2/buddy/lambda/dev/standins"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/uploads"
)

// The Anthropic API's request size and the room the reply job keeps for
// the rest of the body (lambda/chat/attachments.go: anthropicRequestBytes,
// requestRoom): a message's text and base64 attachments may take the
// difference, and sendMessage refuses more as too_large.
const (
	anthropicRequestBytes = 32 << 20
	requestRoom           = 1 << 20
	maxAttachments        = 20 // sendMessage's attachments, at most
)

// LargestRequest is the message the attachment peak RSS is taken with.
type LargestRequest struct {
	// RequestLimitBytes is what text and base64 attachments may take.
	RequestLimitBytes int64 `json:"request_limit_bytes"`
	// Images are the PNGs' sizes, bytes; WireBytes their base64 plus the
	// text, as sendMessage counts it.
	Images    []int `json:"image_bytes"`
	WireBytes int64 `json:"wire_bytes"`
	// ImageTokens is what the images count in the model's input.
	ImageTokens int64 `json:"image_tokens"`
}

// largestRequest fills the request limit with PNGs: as many of
// MAX_IMAGE_BYTES (3.75 MiB) as fit, then one taking what is left, each
// counted as base64 (4 bytes per 3) beside the text. A PDF of 10 MiB
// fills it no further (any mix ends at the same limit), and the 20
// attachments sendMessage takes are never reached: 7 files fill it.
func largestRequest(textLen int) (limit int64, sizes []int) {
	limit = anthropicRequestBytes - requestRoom
	left := limit - int64(textLen)
	full := int64(config.DefaultMaxImageBytes)
	for len(sizes) < maxAttachments && left >= (full+2)/3*4 {
		sizes = append(sizes, int(full))
		left -= (full + 2) / 3 * 4
	}
	if last := left / 4 * 3; len(sizes) < maxAttachments && last >= 64<<10 {
		sizes = append(sizes, int(last))
	}
	return limit, sizes
}

// AttachmentRSS is the attachment peak RSS run.
type AttachmentRSS struct {
	PeakRSS int64 // bytes
	Request LargestRequest
	Reply   ReplyStats
}

// RunAttachmentRSS is RunMessagePath with the largest message the limits
// allow: the PNGs of largestRequest are put in the S3 emulator's bucket
// (standins.UploadsBucket) and stored as the user's ready uploads, then
// the deployed websocket-message binary under the emulator takes a
// sendMessage carrying them all and runs its reply job, which reads them
// from S3 and sends them to the stand-in model base64. The figure is the
// function process's VmHWM after the reply ended.
func RunAttachmentRSS(ctx context.Context, s *standins.Set, rieBin, home, bin string) (*AttachmentRSS, error) {
	if s.S3 == nil {
		return nil, fmt.Errorf("%w: no S3 emulator (it starts with DynamoDB Local)", ErrSkip)
	}
	model, err := startModel()
	if err != nil {
		return nil, err
	}
	defer model.Close()
	const user, conn = "bench-attach-user", "YmVuY2htYXJrMg="
	now := time.Now()
	st := store.NewDynamo(s.DB.Client, s.DB.Tables)
	if err := st.PutConnection(ctx, store.Connection{ConnectionID: conn, UserID: user, ConnectedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		return nil, fmt.Errorf("seed connection: %w", err)
	}
	text := directives(20, 0, 0) + " Compare these pictures."
	limit, sizes := largestRequest(len(text))
	req := LargestRequest{RequestLimitBytes: limit, Images: sizes, WireBytes: int64(len(text))}
	s3c := s.S3.Client()
	var idsSent []string
	for i, size := range sizes {
		png, w, h := noisePNG(size, uint64(10+i))
		id := ids.New()
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(standins.UploadsBucket), Key: aws.String(uploads.Key(id)),
			Body: bytes.NewReader(png), ContentType: aws.String(uploads.PNG), ContentLength: aws.Int64(int64(len(png))),
			Tagging: aws.String(manifest.UploadTagKey + "=" + manifest.UploadTagPending),
		}); err != nil {
			return nil, fmt.Errorf("put upload %d: %w", i, err)
		}
		u := store.Upload{UserID: user, UploadID: id, Name: fmt.Sprintf("noise-%d.png", i), ContentType: uploads.PNG, Size: int64(len(png)), CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
		if err := st.CreateUpload(ctx, u, now.UTC().Format(time.DateOnly), 200); err != nil {
			return nil, fmt.Errorf("seed upload %d: %w", i, err)
		}
		u.Status, u.Width, u.Height = store.UploadReady, w, h
		if _, err := st.SettleUpload(ctx, u); err != nil {
			return nil, fmt.Errorf("settle upload %d: %w", i, err)
		}
		idsSent = append(idsSent, id)
		req.WireBytes += int64(len(png)+2) / 3 * 4
		req.ImageTokens += uploads.Tokens(uploads.PNG, w, h, 0)
	}
	if req.WireBytes > limit {
		return nil, fmt.Errorf("the largest request takes %d bytes, over the limit of %d", req.WireBytes, limit)
	}

	body, _ := json.Marshal(map[string]any{
		"action": "sendMessage", "requestId": "bench-attach", "text": text, "attachments": idsSent,
	})
	reply, rss, output, err := replyUnderEmulator(ctx, s, rieBin, home, bin, model.URL, conn, body)
	if err != nil {
		return nil, err
	}
	rs := reply.Stats()
	if rs.Error != "" || !rs.End {
		return nil, fmt.Errorf("reply with %d attachments did not end well (error %q, end %v)\n%s", len(idsSent), rs.Error, rs.End, output)
	}
	return &AttachmentRSS{PeakRSS: rss, Request: req, Reply: rs}, nil
}

func attachmentRSS(ctx context.Context, o *Options, r *Results, h *harness, bins map[string]string) error {
	bin, ok := bins[manifest.WebSocketMessage.Dir]
	if !ok {
		return fmt.Errorf("%w: websocket-message not built", ErrSkip)
	}
	if h.stands.DB == nil {
		return fmt.Errorf("%w: %v", ErrSkip, h.dbErr)
	}
	var m *AttachmentRSS
	var runs []float64
	for range o.AttachmentRSSRuns {
		one, err := RunAttachmentRSS(ctx, h.stands, h.rie, h.home, bin)
		if err != nil {
			return err
		}
		runs = append(runs, round(float64(one.PeakRSS)/(1<<20), 1))
		if m == nil || one.PeakRSS > m.PeakRSS {
			m = one
		}
	}
	a := r.attachments()
	a.PeakRSSRunsMB = runs
	rss := round(float64(m.PeakRSS)/(1<<20), 1)
	mem := manifest.WebSocketMessage.MemoryMB
	share := round(rss/float64(mem), 3)
	a.PeakRSSMB, a.MemoryMB, a.PeakShare, a.LargestRequest = &rss, mem, &share, &m.Request
	r.Note("attachments.peak_rss_mb: the deployed websocket-message binary (GOARCH=%s) under %s %s, sendMessage carrying %d PNGs of random pixels (%v bytes: as many of MAX_IMAGE_BYTES as fit, then the rest) that take %d bytes as base64 with the text, of the %d a request may carry (32 MiB less 1 MiB of room), stored as ready uploads in DynamoDB Local and the S3 emulator; its reply job read them and sent them to the stand-in model; VmHWM of that process (init and sendMessage included) in MiB, the largest of %d runs (each a fresh process: %v; the garbage collector's timing moves it), against the function's %d MB (Lambda's MB are MiB)", runtime.GOARCH, rie.Command, h.rieVersion, len(m.Request.Images), m.Request.Images, m.Request.WireBytes, m.Request.RequestLimitBytes, len(runs), runs, mem)
	return nil
}

// attachments is r's attachments group, made when missing.
func (r *Results) attachments() *Attachments {
	if r.Attachments == nil {
		r.Attachments = &Attachments{}
	}
	return r.Attachments
}
