package fakemodel_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/p2/buddy/lambda/dev/fakemodel"
)

// Images made with the standard library's encoders; WebP, which it cannot
// encode, as the header the stand-in reads.

func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	img.SetGray(0, 0, color.Gray{Y: uint8(w + h)}) // images of one size differ by their size
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegOf(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewRGBA(image.Rect(0, 0, w, h)), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gifOf(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	img := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.Black, color.White})
	if err := gif.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// webpOf is a WebP file's RIFF header and first chunk: "VP8L" (lossless),
// "VP8 " (lossy) or "VP8X" (extended), of w×h.
func webpOf(chunk string, w, h int) []byte {
	var payload []byte
	switch chunk {
	case "VP8L":
		payload = binary.LittleEndian.AppendUint32([]byte{0x2f}, uint32(w-1)|uint32(h-1)<<14)
	case "VP8 ":
		payload = []byte{0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a}
		payload = binary.LittleEndian.AppendUint16(payload, uint16(w))
		payload = binary.LittleEndian.AppendUint16(payload, uint16(h))
	case "VP8X":
		payload = []byte{0, 0, 0, 0, byte(w - 1), byte((w - 1) >> 8), byte((w - 1) >> 16), byte(h - 1), byte((h - 1) >> 8), byte((h - 1) >> 16)}
	}
	payload = append(payload, make([]byte, 8)...)
	b := []byte("RIFF")
	b = binary.LittleEndian.AppendUint32(b, uint32(4+8+len(payload)))
	b = append(b, "WEBP"+chunk...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

func b64(raw []byte) string { return base64.StdEncoding.EncodeToString(raw) }

// imageBlock is an image block with data as given (base64 or not).
func imageBlock(mediaType, data string) map[string]any {
	return map[string]any{"type": "image", "source": map[string]any{"type": "base64", "media_type": mediaType, "data": data}}
}

func img(mediaType string, raw []byte) map[string]any { return imageBlock(mediaType, b64(raw)) }

func doc(raw []byte) map[string]any {
	return map[string]any{"type": "document", "source": map[string]any{"type": "base64", "media_type": "application/pdf", "data": b64(raw)}}
}

// user is a user turn of blocks.
func user(b ...map[string]any) map[string]any { return msg("user", blocks(b...)) }

func pngs(t *testing.T, n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = img("image/png", pngOf(t, 1, 1))
	}
	return out
}

// shortSum is the first 12 hex digits of raw's SHA-256, as [[describe]]
// writes them.
func shortSum(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])[:12]
}

// The two paths: the same body goes to the Messages API or, adapted, to
// Bedrock's InvokeModelWithResponseStream.
type path struct {
	name    string
	bedrock bool
}

var paths = []path{{name: "anthropic"}, {name: "bedrock", bedrock: true}}

const bedrockStream = "/model/us.anthropic.claude-opus-4-5-20251101-v1%3A0/invoke-with-response-stream"

// send posts b on p and returns the response.
func (p path) send(t *testing.T, url string, b map[string]any) *http.Response {
	t.Helper()
	if !p.bedrock {
		return post(context.Background(), t, url+"/v1/messages", b, nil)
	}
	b = maps.Clone(b)
	delete(b, "model")
	delete(b, "stream")
	b["anthropic_version"] = "bedrock-2023-05-31"
	signed := http.Header{"Authorization": {"AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00"}}
	return post(context.Background(), t, url+bedrockStream, b, signed)
}

// refusal is the error a response carries: the API's error type, or
// Bedrock's exception, and the message.
func (p path) refusal(t *testing.T, res *http.Response) (kind, message string) {
	t.Helper()
	var e struct {
		Message string
		Error   struct{ Type, Message string }
	}
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil {
		t.Fatalf("error body: %v", err)
	}
	if p.bedrock {
		kind, _, _ := strings.Cut(res.Header.Get("x-amzn-ErrorType"), ":")
		return kind, e.Message
	}
	return e.Error.Type, e.Error.Message
}

// reply reads a 200's stream: its events, on either path.
func (p path) reply(t *testing.T, res *http.Response) []event {
	t.Helper()
	if res.StatusCode != 200 {
		_, m := p.refusal(t, res)
		t.Fatalf("status %d: %s", res.StatusCode, m)
	}
	if p.bedrock {
		return readEventStream(t, res.Body)
	}
	return readSSE(t, res.Body)
}

func TestAttachmentsAreValidatedLikeTheAPI(t *testing.T) {
	png1 := pngOf(t, 3, 2)
	// A PNG padded to exactly the 5 MB of base64 the API allows: its
	// header still reads, whatever follows.
	png5MB := append(pngOf(t, 2, 2), make([]byte, 5<<20/4*3-len(pngOf(t, 2, 2)))...)
	big := pngOf(t, 2001, 1)
	tests := []struct {
		name       string
		messages   []map[string]any
		wantStatus int
		want       string // the message, exactly
	}{
		{name: "data that is not base64 is refused", wantStatus: 400,
			messages: []map[string]any{user(imageBlock("image/png", "iVBORw0KGgo*not base64*"), tb("hi", ""))},
			want:     "messages.0.content.0.image.source.base64: invalid base64 data"},
		{name: "a PNG declared as JPEG is refused", wantStatus: 400,
			messages: []map[string]any{user(tb("look", ""), img("image/jpeg", png1))},
			want:     "messages.0.content.1.image.source.base64.data: Image does not match the provided media type image/jpeg"},
		{name: "a JPEG declared as WebP is refused", wantStatus: 400,
			messages: []map[string]any{user(img("image/webp", jpegOf(t, 4, 4)))},
			want:     "messages.0.content.0.image.source.base64.data: Image does not match the provided media type image/webp"},
		{name: "a PDF sent as an image is refused", wantStatus: 400,
			messages: []map[string]any{user(img("image/png", pdfOf(pdfOptions{pages: 1})))},
			want:     "messages.0.content.0.image.source.base64.data: Image does not match the provided media type image/png"},
		{name: "an image type not on the list is refused", wantStatus: 400,
			messages: []map[string]any{user(img("image/bmp", []byte("BM0000")))},
			want:     "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"},
		{name: "an empty image is refused", wantStatus: 400,
			messages: []map[string]any{user(imageBlock("image/png", ""))},
			want:     "messages.0.content.0.image.source.base64: image cannot be empty"},
		{name: "an image over 5 MB of base64 is refused", wantStatus: 400,
			messages: []map[string]any{user(imageBlock("image/png", strings.Repeat("A", 5<<20+4)))},
			want:     "messages.0.content.0.image.source.base64: image exceeds 5 MB maximum: 5242884 bytes > 5242880 bytes"},
		{name: "an image of exactly 5 MB of base64 is accepted", wantStatus: 200,
			messages: []map[string]any{user(img("image/png", png5MB))}},
		{name: "a truncated image is refused", wantStatus: 400,
			messages: []map[string]any{user(img("image/png", png1[:20]))},
			want:     "messages.0.content.0.image.source.base64.data: Could not process image"},
		{name: "a WebP whose first chunk is unknown is refused", wantStatus: 400,
			messages: []map[string]any{user(img("image/webp", append([]byte("RIFF\x20\x00\x00\x00WEBPALPH"), make([]byte, 20)...)))},
			want:     "messages.0.content.0.image.source.base64.data: Could not process image"},
		{name: "an image 8001 px wide is refused", wantStatus: 400,
			messages: []map[string]any{user(img("image/png", pngOf(t, 8001, 1)))},
			want:     "messages.0.content.0.image.source.base64.data: At least one of the image dimensions exceed max allowed size: 8000 pixels"},
		{name: "a WebP 8001 px high is refused", wantStatus: 400,
			messages: []map[string]any{user(img("image/webp", webpOf("VP8X", 10, 8001)))},
			want:     "messages.0.content.0.image.source.base64.data: At least one of the image dimensions exceed max allowed size: 8000 pixels"},
		{name: "an image 8000 px wide is accepted", wantStatus: 200,
			messages: []map[string]any{user(img("image/png", pngOf(t, 8000, 1)))}},
		{name: "past 20 images, one over 2000 px is refused", wantStatus: 400,
			messages: []map[string]any{user(pngs(t, 10)...), msg("assistant", "ok"), user(append(pngs(t, 10), img("image/png", big))...)},
			want:     "messages.2.content.10.image.source.base64.data: At least one of the image dimensions exceed max allowed size for many-image requests: 2000 pixels"},
		{name: "20 images may be over 2000 px", wantStatus: 200,
			messages: []map[string]any{user(append(pngs(t, 19), img("image/png", big))...)}},
		{name: "101 images are refused", wantStatus: 400,
			messages: []map[string]any{user(pngs(t, 50)...), msg("assistant", "ok"), user(pngs(t, 51)...)},
			want:     "too many images and documents: 101 + 0 > 100"},
		{name: "100 images are accepted", wantStatus: 200,
			messages: []map[string]any{user(pngs(t, 50)...), msg("assistant", "ok"), user(pngs(t, 50)...)}},
		{name: "an image in an assistant turn is refused", wantStatus: 400,
			messages: []map[string]any{user(tb("hi", "")), msg("assistant", blocks(img("image/png", png1))), user(tb("well?", ""))},
			want:     "messages.1.content.0.type: image blocks are accepted in user turns only"},
		{name: "an image by url is refused offline", wantStatus: 400,
			messages: []map[string]any{user(map[string]any{"type": "image", "source": map[string]any{"type": "url", "url": "https://example.com/a.png"}})},
			want: "messages.0.content.0.image.source.type: the offline stand-in takes only 'base64' sources, not \"url\" " +
				"(the API also takes url and file sources; Bedrock only base64)"},
		{name: "an image without a source is refused", wantStatus: 400,
			messages: []map[string]any{user(map[string]any{"type": "image"})},
			want:     "messages.0.content.0.image.source: Field required"},
		{name: "a PNG sent as a PDF is refused", wantStatus: 400,
			messages: []map[string]any{user(doc(png1))},
			want:     "messages.0.content.0.pdf.source.base64.data: The PDF specified was not valid."},
		{name: "a truncated PDF is refused", wantStatus: 400,
			messages: []map[string]any{user(doc(pdfOf(pdfOptions{pages: 3})[:300]))},
			want:     "messages.0.content.0.pdf.source.base64.data: The PDF specified was not valid."},
		{name: "an encrypted PDF is refused", wantStatus: 400,
			messages: []map[string]any{user(tb("read this", ""), doc(pdfOf(pdfOptions{pages: 2, encrypt: true})))},
			want:     "messages.0.content.1.pdf.source.base64.data: The PDF specified is password protected."},
		{name: "an empty PDF is refused", wantStatus: 400,
			messages: []map[string]any{user(map[string]any{"type": "document", "source": map[string]any{"type": "base64", "media_type": "application/pdf", "data": ""}})},
			want:     "messages.0.content.0.pdf.source.base64.data: PDF cannot be empty"},
		{name: "a PDF that is not base64 is refused", wantStatus: 400,
			messages: []map[string]any{user(map[string]any{"type": "document", "source": map[string]any{"type": "base64", "media_type": "application/pdf", "data": "JVBERi0=x"}})},
			want:     "messages.0.content.0.pdf.source.base64: invalid base64 data"},
		{name: "a document type other than PDF is refused", wantStatus: 400,
			messages: []map[string]any{user(map[string]any{"type": "document", "source": map[string]any{"type": "base64", "media_type": "text/plain", "data": b64([]byte("hi"))}})},
			want:     "messages.0.content.0.document.source.base64.media_type: Input should be 'application/pdf'"},
		{name: "a PDF of 101 pages is refused", wantStatus: 400,
			messages: []map[string]any{user(doc(pdfOf(pdfOptions{pages: 101})))},
			want:     "messages.0.content.0: A maximum of 100 PDF pages may be provided."},
		{name: "PDFs of 60 and 41 pages in two turns are refused at the second", wantStatus: 400,
			messages: []map[string]any{user(doc(pdfOf(pdfOptions{pages: 60}))), msg("assistant", "ok"), user(tb("and", ""), doc(pdfOf(pdfOptions{pages: 41})))},
			want:     "messages.2.content.1: A maximum of 100 PDF pages may be provided."},
		{name: "PDFs of 100 pages together are accepted", wantStatus: 200,
			messages: []map[string]any{user(doc(pdfOf(pdfOptions{pages: 60})), doc(pdfOf(pdfOptions{pages: 40})))}},
		{name: "a document with title, context, citations and a breakpoint is accepted", wantStatus: 200,
			messages: []map[string]any{user(func() map[string]any {
				d := doc(pdfOf(pdfOptions{pages: 1}))
				d["title"], d["context"] = "report.pdf", "the quarterly report"
				d["citations"] = map[string]any{"enabled": true}
				d["cache_control"] = map[string]any{"type": "ephemeral"}
				return d
			}(), tb("summarize", ""))}},
	}
	for _, p := range paths {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				_, url := start(t, fakemodel.Options{})
				res := p.send(t, url, cacheBody(opus, nil, tt.messages...))
				if res.StatusCode != tt.wantStatus {
					_, m := p.refusal(t, res)
					t.Fatalf("status %d (%s), want %d", res.StatusCode, m, tt.wantStatus)
				}
				if tt.wantStatus == 200 {
					return
				}
				wantKind := "invalid_request_error"
				if p.bedrock {
					wantKind = "ValidationException"
				}
				if kind, m := p.refusal(t, res); kind != wantKind || m != tt.want {
					t.Errorf("refusal %s %q\nwant      %s %q", kind, m, wantKind, tt.want)
				}
			})
		}
	}
}

func TestARequestOver32MBIsTooLarge(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			_, url := start(t, fakemodel.Options{})
			b := cacheBody(opus, nil, user(tb("hi", "")))
			// Padding in a field the stand-in ignores: the size alone is
			// refused.
			b["metadata"] = map[string]any{"padding": strings.Repeat("x", 32<<20)}
			res := p.send(t, url, b)
			wantKind := "request_too_large"
			if p.bedrock {
				wantKind = "ValidationException"
			}
			if kind, m := p.refusal(t, res); res.StatusCode != 413 || kind != wantKind || m != "Request exceeds the maximum allowed number of bytes." {
				t.Errorf("status %d, refusal %s %q; want 413 %s", res.StatusCode, kind, m, wantKind)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	pngRaw, jpegRaw, gifRaw := pngOf(t, 100, 75), jpegOf(t, 64, 64), gifOf(t, 30, 25)
	lossless, lossy, extended := webpOf("VP8L", 1000, 750), webpOf("VP8 ", 320, 240), webpOf("VP8X", 7999, 2)
	pdf := pdfOf(pdfOptions{pages: 3})
	tests := []struct {
		name     string
		messages []map[string]any
		maxTok   int
		want     string
		wantStop string
	}{
		{name: "one line per attachment of the last user turn, in order",
			messages: []map[string]any{user(
				img("image/png", pngRaw), img("image/jpeg", jpegRaw), tb("what are these? [[describe]]", ""),
				img("image/gif", gifRaw), img("image/webp", lossless), doc(pdf),
				img("image/webp", lossy), img("image/webp", extended))},
			want: "image image/png 100x75 sha256:" + shortSum(pngRaw) + "\n" +
				"image image/jpeg 64x64 sha256:" + shortSum(jpegRaw) + "\n" +
				"image image/gif 30x25 sha256:" + shortSum(gifRaw) + "\n" +
				"image image/webp 1000x750 sha256:" + shortSum(lossless) + "\n" +
				"document application/pdf 3 pages sha256:" + shortSum(pdf) + "\n" +
				"image image/webp 320x240 sha256:" + shortSum(lossy) + "\n" +
				"image image/webp 7999x2 sha256:" + shortSum(extended),
			wantStop: "end_turn"},
		{name: "earlier turns' attachments are not described",
			messages: []map[string]any{user(img("image/png", pngRaw), tb("first", "")), msg("assistant", "seen"), user(doc(pdf), tb("[[describe]] [[tokens=3]]", ""))},
			want:     "document application/pdf 3 pages sha256:" + shortSum(pdf), wantStop: "end_turn"},
		{name: "a last turn without attachments describes nothing",
			messages: []map[string]any{user(img("image/png", pngRaw), tb("first", "")), msg("assistant", "seen"), user(tb("and now? [[describe]]", ""))},
			want:     "", wantStop: "end_turn"},
		{name: "max_tokens cuts the description",
			messages: []map[string]any{user(img("image/png", pngRaw), doc(pdf), tb("[[describe]]", ""))}, maxTok: 5,
			want: "image image/png 100x75 sha256:" + shortSum(pngRaw) + "\ndocument ", wantStop: "max_tokens"},
	}
	for _, p := range paths {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				_, url := start(t, fakemodel.Options{})
				b := cacheBody(opus, nil, tt.messages...)
				if tt.maxTok > 0 {
					b["max_tokens"] = tt.maxTok
				}
				events := p.reply(t, p.send(t, url, b))
				if text, _ := deltaText(events); text != tt.want {
					t.Errorf("text:\n%s\nwant:\n%s", text, tt.want)
				}
				if stop := events[len(events)-2].data["delta"].(map[string]any)["stop_reason"]; stop != tt.wantStop {
					t.Errorf("stop_reason %v, want %s", stop, tt.wantStop)
				}
			})
		}
	}
}

func TestDescribeWithoutStreaming(t *testing.T) {
	_, url := start(t, fakemodel.Options{})
	raw := gifOf(t, 2, 3)
	b := cacheBody(opus, nil, user(img("image/gif", raw), tb("[[describe]]", "")))
	delete(b, "stream")
	var m struct {
		Content []struct{ Text string }
		Usage   struct {
			Output int `json:"output_tokens"`
		}
	}
	if err := json.NewDecoder(post(context.Background(), t, url+"/v1/messages", b, nil).Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if want := "image image/gif 2x3 sha256:" + shortSum(raw); len(m.Content) != 1 || m.Content[0].Text != want || m.Usage.Output != 4 {
		t.Errorf("message %+v, want the text %q in 4 tokens", m, want)
	}
}

func TestAttachmentsCountAsInputTokens(t *testing.T) {
	tests := []struct {
		name     string
		messages []map[string]any
		want     int
	}{
		// 3 words + ceil(100×75/750)=10 + ceil(64×64/750)=6 + ceil(30×25/750)=1 + 1000×750/750=1000.
		{name: "an image is width × height / 750, rounded up", want: 3 + 10 + 6 + 1 + 1000,
			messages: []map[string]any{user(img("image/png", pngOf(t, 100, 75)), img("image/jpeg", jpegOf(t, 64, 64)),
				img("image/gif", gifOf(t, 30, 25)), img("image/webp", webpOf("VP8L", 1000, 750)), tb("what are these?", ""))}},
		{name: "a PDF is 3,000 a page", want: 1 + 3*3000 + 2 + 2*3000,
			messages: []map[string]any{user(doc(pdfOf(pdfOptions{pages: 3})), tb("summarize", "")), msg("assistant", "it's long"), user(doc(pdfOf(pdfOptions{pages: 2})))}},
		{name: "a one-pixel image is one token", want: 1 + 1,
			messages: []map[string]any{user(img("image/png", pngOf(t, 1, 1)), tb("dot", ""))}},
	}
	for _, p := range paths {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				_, url := start(t, fakemodel.Options{})
				events := p.reply(t, p.send(t, url, cacheBody(opus, nil, tt.messages...)))
				usage := events[0].data["message"].(map[string]any)["usage"].(map[string]any)
				if usage["input_tokens"] != float64(tt.want) {
					t.Errorf("input_tokens %v, want %d", usage["input_tokens"], tt.want)
				}
			})
		}
	}
}

func TestACachedPrefixWithAnImageIsReadBack(t *testing.T) {
	// 1000×1000 is 1334 tokens, past Sonnet 4.5's 1024-token minimum.
	photo, other := pngOf(t, 1000, 1000), pngOf(t, 1000, 1000)
	other[len(other)-13]++ // the same header, other bytes
	cached := func(raw []byte, question string) map[string]any {
		b := img("image/png", raw)
		b["cache_control"] = map[string]any{"type": "ephemeral"}
		return cacheBody(sonnet, nil, user(b, tb(question, "")))
	}
	_, url := start(t, fakemodel.Options{})
	steps := []struct {
		name string
		body map[string]any
		want usage
	}{
		{name: "the first request writes the image's prefix", body: cached(photo, "what is it?"), want: u(3, 0, 1334, 0)},
		{name: "the same request reads it", body: cached(photo, "what is it?"), want: u(3, 1334, 0, 0)},
		{name: "another question after the same image reads it", body: cached(photo, "and the colours?"), want: u(3, 1334, 0, 0)},
		{name: "another image of the same size does not", body: cached(other, "what is it?"), want: u(3, 0, 1334, 0)},
	}
	for _, s := range steps {
		if got := startUsage(t, url, s.body); got != s.want {
			t.Errorf("%s: usage %v, want %v", s.name, got, s.want)
		}
	}
}
