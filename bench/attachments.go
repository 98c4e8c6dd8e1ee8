package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/p2/buddy/lambda/dev/s3local"
	"github.com/p2/buddy/lambda/dev/wsclient"
	"github.com/p2/buddy/lambda/uploads"
)

// Sizes of the attachment figures (issue 19's "Measured"): a 3 MiB PNG
// uploaded and sent, a 10 MiB PDF of 100 pages completed.
const (
	attachPNGBytes = 3 << 20
	attachPDFBytes = 10 << 20
	attachPDFPages = 100
	// attachWarmup uploads of each kind run first and are not counted.
	attachWarmup = 1
)

// Attachments is the attachments group of bench/results.json.
type Attachments struct {
	// UploadToFirstTokenMS runs from POST /uploads (declare) through the
	// form POST to the S3 emulator, POST /uploads/{id}/complete and
	// sendMessage carrying the upload to the reply's first delta.
	UploadToFirstTokenMS *Latency `json:"upload_to_first_token_ms,omitempty"`
	PNGBytes             int      `json:"png_bytes,omitempty"`
	// CompleteMS is POST /uploads/{id}/complete of a PDF of PDFPages
	// pages and PDFBytes bytes, already in the bucket.
	CompleteMS *Latency `json:"complete_ms,omitempty"`
	PDFBytes   int      `json:"pdf_bytes,omitempty"`
	PDFPages   int      `json:"pdf_pages,omitempty"`
	// PeakRSSMB is the websocket-message function's VmHWM (MiB) over
	// sendMessage and the reply job of the largest message the limits
	// allow (LargestRequest), under the emulator.
	PeakRSSMB *float64 `json:"peak_rss_mb,omitempty"`
	// PeakRSSRunsMB is each run's; PeakRSSMB is the largest.
	PeakRSSRunsMB []float64 `json:"peak_rss_runs_mb,omitempty"`
	// MemoryMB is the function's configured memory (manifest), and
	// PeakShare PeakRSSMB over it (goal ≤ 0.8).
	MemoryMB       int             `json:"memory_mb,omitempty"`
	PeakShare      *float64        `json:"peak_share_of_memory,omitempty"`
	LargestRequest *LargestRequest `json:"largest_request,omitempty"`
	// Date is when these figures were taken, when it differs from the
	// file's (a run of the attachment parts only, merged in).
	Date string `json:"date,omitempty"`
}

// uploadDecl is POST /uploads's answer.
type uploadDecl struct {
	Upload struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Pages  int    `json:"pages"`
		Width  int    `json:"width"`
	} `json:"upload"`
	Post struct {
		URL    string            `json:"url"`
		Fields map[string]string `json:"fields"`
	} `json:"post"`
}

// upload declares file, posts it to the bucket as a browser does and
// returns the declaration; complete is left to the caller.
func (d *DevServer) upload(ctx context.Context, tok, name, contentType string, file []byte) (uploadDecl, error) {
	var u uploadDecl
	if err := d.api(ctx, tok, http.MethodPost, "/uploads", map[string]any{"name": name, "contentType": contentType, "size": len(file)}, http.StatusCreated, &u); err != nil {
		return u, err
	}
	st, code, err := s3local.PostObject(ctx, u.Post.URL, u.Post.Fields, file)
	if err != nil {
		return u, err
	}
	if st >= 300 {
		return u, fmt.Errorf("the S3 emulator refused the upload: %d %s", st, code)
	}
	return u, nil
}

func (d *DevServer) complete(ctx context.Context, tok, id string) (uploadDecl, error) {
	var u uploadDecl
	err := d.api(ctx, tok, http.MethodPost, "/uploads/"+id+"/complete", nil, http.StatusOK, &u)
	if err == nil && u.Upload.Status != "ready" {
		err = fmt.Errorf("complete of %s answered status %q", id, u.Upload.Status)
	}
	return u, err
}

// attachedMessage is sendMessage with attachments (wsclient's frame has
// no field for them).
type attachedMessage struct {
	wsclient.SendMessage
	Attachments []string `json:"attachments"`
}

// sendAttached sends a sendMessage carrying the uploads ids.
func (c *client) sendAttached(ctx context.Context, requestID, text string, ids []string) (*Reply, error) {
	b, err := json.Marshal(attachedMessage{SendMessage: wsclient.SendMessage{Action: "sendMessage", RequestID: requestID, Text: text}, Attachments: ids})
	if err != nil {
		return nil, err
	}
	r := NewReply(time.Now())
	c.mu.Lock()
	c.replies[requestID] = r
	c.mu.Unlock()
	if err := c.conn.SendRaw(ctx, b); err != nil {
		return nil, fmt.Errorf("send %s: %w", requestID, err)
	}
	return r, nil
}

// UploadToFirstToken uploads a PNG of attachPNGBytes n times (after
// attachWarmup untimed ones) on one warm socket, each sent in a new
// conversation, and returns the milliseconds from declaring it to the
// reply's first delta. The stand-in is told [[ttft=0]]: what is timed is
// Buddy's path and the emulator's, not a model's.
func (d *DevServer) UploadToFirstToken(ctx context.Context, n int) ([]float64, error) {
	sub := fmt.Sprintf("bench-attach-%d", time.Now().UnixNano())
	tok, err := d.token(ctx, sub)
	if err != nil {
		return nil, err
	}
	c, err := dialClient(ctx, d.srv.WebSocketURL, tok)
	if err != nil {
		return nil, err
	}
	defer c.close()
	png, _, _ := noisePNG(attachPNGBytes, 1)
	var out []float64
	for i := range attachWarmup + n {
		t0 := time.Now()
		u, err := d.upload(ctx, tok, "noise.png", uploads.PNG, png)
		if err != nil {
			return nil, err
		}
		if _, err := d.complete(ctx, tok, u.Upload.ID); err != nil {
			return nil, err
		}
		r, err := c.sendAttached(ctx, fmt.Sprintf("attach-%d", i), directives(ttftReplyTokens, 0, 0)+" What is in this picture?", []string{u.Upload.ID})
		if err != nil {
			return nil, err
		}
		if err := c.wait(ctx, r); err != nil {
			return nil, err
		}
		s := r.Stats()
		if s.Error != "" || s.FirstDelta.IsZero() {
			return nil, fmt.Errorf("reply to an attached PNG: error %q, first delta %v", s.Error, s.FirstDelta)
		}
		if i >= attachWarmup {
			out = append(out, ms(s.FirstDelta.Sub(t0)))
		}
	}
	return out, nil
}

// CompletePDF uploads a PDF of attachPDFPages pages and attachPDFBytes
// bytes n times (after attachWarmup untimed ones) and returns the
// milliseconds of each POST /uploads/{id}/complete.
func (d *DevServer) CompletePDF(ctx context.Context, n int) ([]float64, error) {
	tok, err := d.token(ctx, fmt.Sprintf("bench-pdf-%d", time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	pdf := textPDF(attachPDFPages, attachPDFBytes)
	var out []float64
	for i := range attachWarmup + n {
		u, err := d.upload(ctx, tok, "book.pdf", uploads.PDF, pdf)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		done, err := d.complete(ctx, tok, u.Upload.ID)
		el := time.Since(t0)
		if err != nil {
			return nil, err
		}
		if done.Upload.Pages != attachPDFPages {
			return nil, fmt.Errorf("complete counted %d pages of %d", done.Upload.Pages, attachPDFPages)
		}
		if i >= attachWarmup {
			out = append(out, ms(el))
		}
		// The day allows MAX_UPLOADS_PER_USER_DAY; the objects need not stay.
		_ = d.api(ctx, tok, http.MethodDelete, "/uploads/"+u.Upload.ID, nil, http.StatusNoContent, nil)
	}
	return out, nil
}

// attachmentFigures takes attachments.upload_to_first_token_ms and
// attachments.complete_ms on the dev server.
func attachmentFigures(ctx context.Context, o *Options, r *Results, d *DevServer) error {
	fmt.Fprintf(o.Progress, "dev server: %d uploads of a %d-byte PNG sent to the model, %d of a %d-byte PDF of %d pages completed\n", o.AttachmentSamples, attachPNGBytes, o.AttachmentSamples, attachPDFBytes, attachPDFPages)
	up, err := d.UploadToFirstToken(ctx, o.AttachmentSamples)
	if err != nil {
		return fmt.Errorf("attachments, upload to first token: %w", err)
	}
	done, err := d.CompletePDF(ctx, o.AttachmentSamples)
	if err != nil {
		return fmt.Errorf("attachments, complete: %w", err)
	}
	a := r.attachments()
	a.UploadToFirstTokenMS = &Latency{P50: round(Percentile(up, 50), 2), P99: round(Percentile(up, 99), 2), Samples: len(up)}
	a.PNGBytes = attachPNGBytes
	a.CompleteMS = &Latency{P50: round(Percentile(done, 50), 2), P99: round(Percentile(done, 99), 2), Samples: len(done)}
	a.PDFBytes, a.PDFPages = attachPDFBytes, attachPDFPages
	r.Note("attachments.upload_to_first_token_ms: a %d-byte PNG of random pixels, one after the other on one warm socket (%d warm-up not counted): POST /uploads, the form POST to the dev server's S3 emulator (SigV4 and policy checked), POST /uploads/{id}/complete, sendMessage carrying it in a new conversation, to the first delta; the stand-in is told [[ttft=0]], so the time is Buddy's and the emulator's (the reply job reads the PNG back from S3 and sends it base64)", attachPNGBytes, attachWarmup)
	r.Note("attachments.complete_ms: POST /uploads/{id}/complete of a %d-byte PDF of %d pages (uncompressed text content streams, a classic cross-reference table), already posted to the S3 emulator, %d warm-up not counted; complete spools the object and reads its cross-reference and page tree", attachPDFBytes, attachPDFPages, attachWarmup)
	return nil
}
