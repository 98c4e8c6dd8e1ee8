package claude_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/dev/fakemodel"
	"github.com/p2/buddy/lambda/dev/testfiles"
	"github.com/p2/buddy/lambda/uploads"
)

// Each turn's attachments reach the model as base64 image and document
// blocks before the turn's text, on the Anthropic API and on Bedrock
// alike: the stand-in checks them as the API does and describes what it
// received ([[describe]]); the newest user turn's breakpoint goes on its
// last block, so its attachments are cached with it.
func TestAttachmentsReachTheModel(t *testing.T) {
	png := testfiles.Image(uploads.PNG, 30, 20)
	pdf := testfiles.PDF("1.7", 3, false)
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:])[:12] }
	want := fmt.Sprintf("image image/png 30x20 sha256:%s\ndocument application/pdf 3 pages sha256:%s", sum(png), sum(pdf))
	providers := []struct {
		name  string
		model func(t *testing.T) (claude.Streamer, *fakemodel.Server)
	}{
		{"anthropic", func(t *testing.T) (claude.Streamer, *fakemodel.Server) {
			fm, m := newAnthropic(t, fakemodel.Options{})
			return m, fm
		}},
		{"bedrock", func(t *testing.T) (claude.Streamer, *fakemodel.Server) {
			m, fm, _ := startBedrock(t, 0)
			return m, fm
		}},
	}
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			m, fm := p.model(t)
			req := request("what are these? [[describe]]")
			req.MaxTokens = 200
			req.CacheTTL = "5m"
			req.Turns[0].Attachments = []claude.Attachment{
				{MediaType: uploads.PNG, Data: png, Tokens: uploads.Tokens(uploads.PNG, 30, 20, 0)},
				{MediaType: uploads.PDF, Data: pdf, Tokens: uploads.Tokens(uploads.PDF, 0, 0, 3)},
			}
			var rec recorder
			res, err := m.Stream(context.Background(), req, &rec)
			if err != nil {
				t.Fatal(err)
			}
			if rec.text() != want {
				t.Errorf("the model saw\n%s\nwant\n%s", rec.text(), want)
			}
			body, _ := fm.LastRequest()
			content := body.Messages[0].Content
			if len(content) != 3 || content[0].Type != "image" || content[1].Type != "document" || content[2].Type != "text" {
				t.Fatalf("blocks %+v, want image, document, text", content)
			}
			if got := breakpoints(body); len(got) != 1 || got[0] != "messages.0.content.2 ephemeral" {
				t.Errorf("breakpoints %v, want one on the turn's last block", got)
			}
			if min := uploads.Tokens(uploads.PDF, 0, 0, 3); res.Usage.InputTokens+res.Usage.CacheCreationInputTokens < min {
				t.Errorf("usage %+v counts less than the PDF's %d tokens", res.Usage, min)
			}
		})
	}
}
