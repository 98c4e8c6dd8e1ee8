package fakemodel

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"slices"
	"strings"
)

// Image and document blocks, checked as the Messages API checks them (vision
// and PDF support docs; the limits are also in ../shared/REFERENCE.md):
//
//   - {"type":"image","source":{"type":"base64","media_type":M,"data":D}}
//     with M one of image/jpeg, image/png, image/gif, image/webp; D valid
//     base64, at most 5 MB of base64 text; the bytes must be of type M
//     (magic bytes: PNG \x89PNG, JPEG FF D8 FF, GIF87a/GIF89a, WebP
//     RIFF....WEBP) and their header must give both sides at most 8000 px,
//     2000 px when the request carries more than 20 images; at most 100
//     images a request.
//   - {"type":"document","source":{"type":"base64","media_type":
//     "application/pdf","data":D}} with optional title, context, citations
//     and cache_control: D a PDF (starts %PDF-, ends with %%EOF, has
//     pages), not encrypted (no /Encrypt in its trailer), and the request's
//     PDFs at most 100 pages together.
//   - Both only in user turns, and only base64 sources: offline, the
//     stand-in cannot fetch a url or a Files API id (Bedrock takes base64
//     only as well).
//
// Dimensions come from the image's header only (image.DecodeConfig for PNG,
// JPEG and GIF; the WebP header is read by hand: VP8, VP8L and VP8X), pages
// from a small PDF scan (pdf.go). An image costs ceil(width × height / 750)
// input tokens, a PDF 3,000 a page, as Buddy's history fit counts them
// (DESIGN §9). The API bills a PDF page as text plus an image of the page and
// downscales images whose long edge passes 1568 px; the stand-in keeps the
// plain formulas so that a test can state its counts exactly.
//
// Error messages: where one was seen in public reports of the API's answers
// it is used verbatim ("messages.N.content.M.image.source.base64: image
// exceeds 5 MB maximum: 6500712 bytes > 5242880 bytes", "...base64.data:
// Image does not match the provided media type image/png", "...: At least one
// of the image dimensions exceed max allowed size: 8000 pixels", "... for
// many-image requests: 2000 pixels", "...: invalid base64 data", "...: image
// cannot be empty", "Could not process image", "...media_type: Input should
// be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'", "...pdf.source.
// base64.data: The PDF specified was not valid.", "The PDF specified is
// password protected.", "PDF cannot be empty", "A maximum of 100 PDF pages
// may be provided.", "too many images and documents: 601 + 0 > 600"); the
// rest are the stand-in's own, in the API's "field.path: problem" style.

const (
	// maxImageBase64 is the API's per-image limit, "5 MB", counted on the
	// base64 text: "image exceeds 5 MB maximum: 5327908 bytes > 5242880
	// bytes".
	maxImageBase64 = 5 << 20
	// maxImageSide and manyImageSide bound an image's width and height;
	// manyImageSide applies when a request has more than manyImages
	// images.
	maxImageSide  = 8000
	manyImageSide = 2000
	manyImages    = 20
	// maxImages is the most images a request may carry (200K-context
	// models).
	maxImages = 100
	// maxPDFPages is the most PDF pages a request may carry (below 1M
	// context).
	maxPDFPages = 100
	// pixelsPerToken and tokensPerPDFPage are the token formulas of
	// DESIGN §9.
	pixelsPerToken   = 750
	tokensPerPDFPage = 3000
)

// imageTypes are the media types the API takes for images.
var imageTypes = []string{"image/jpeg", "image/png", "image/gif", "image/webp"}

const pdfType = "application/pdf"

// attachment is what the stand-in learnt of one image or document block.
type attachment struct {
	image         bool
	mediaType     string
	width, height int // images
	pages         int // documents
	sum           [sha256.Size]byte
	// title, context and citations are part of a document block's
	// content for the prompt cache.
	title, context string
	citations      bool
}

// tokens is what the attachment adds to the input.
func (a attachment) tokens() int {
	if a.image {
		return (a.width*a.height + pixelsPerToken - 1) / pixelsPerToken
	}
	return a.pages * tokensPerPDFPage
}

// describe is the attachment's [[describe]] line (DESIGN §9).
func (a attachment) describe() string {
	sum := hex.EncodeToString(a.sum[:])[:12]
	if a.image {
		return fmt.Sprintf("image %s %dx%d sha256:%s", a.mediaType, a.width, a.height, sum)
	}
	return fmt.Sprintf("document %s %d pages sha256:%s", a.mediaType, a.pages, sum)
}

// blockAt is a block's place in the request: messages[msg].content[block].
type blockAt struct{ msg, block int }

// attachments are the image and document blocks of a request by place.
type attachments map[blockAt]attachment

// of lists the attachments of message i in block order.
func (as attachments) of(r Request, i int) []attachment {
	if i < 0 {
		return nil
	}
	var out []attachment
	for j := range r.Messages[i].Content {
		if a, ok := as[blockAt{i, j}]; ok {
			out = append(out, a)
		}
	}
	return out
}

// checkAttachments checks every image and document block of r and measures
// it; the message is the 400's when one is refused.
func checkAttachments(r Request) (attachments, string) {
	images, documents := 0, 0
	for _, m := range r.Messages {
		for _, b := range m.Content {
			switch b.Type {
			case "image":
				images++
			case "document":
				documents++
			}
		}
	}
	if images > maxImages {
		// The wording Bedrock passes on from the model ("too many images
		// and documents: 601 + 0 > 600"); the stand-in limits images only.
		return nil, fmt.Sprintf("too many images and documents: %d + %d > %d", images, documents, maxImages)
	}
	out := attachments{}
	pages := 0
	for i, m := range r.Messages {
		for j, b := range m.Content {
			if b.Type != "image" && b.Type != "document" {
				continue
			}
			at := fmt.Sprintf("messages.%d.content.%d", i, j)
			if m.Role != "user" {
				return nil, fmt.Sprintf("%s.type: %s blocks are accepted in user turns only", at, b.Type)
			}
			var a attachment
			var msg string
			if b.Type == "image" {
				a, msg = checkImage(at, b.Source, images > manyImages)
			} else {
				a, msg = checkDocument(at, b.Source)
				a.title, a.context, a.citations = b.Title, b.Context, b.Citations != nil && b.Citations.Enabled
				if pages += a.pages; msg == "" && pages > maxPDFPages {
					msg = fmt.Sprintf("%s: A maximum of %d PDF pages may be provided.", at, maxPDFPages)
				}
			}
			if msg != "" {
				return nil, msg
			}
			out[blockAt{i, j}] = a
		}
	}
	return out, ""
}

// checkSource refuses what the stand-in cannot read: a missing source or
// one that is not base64.
func checkSource(at, kind string, s *Source) string {
	switch {
	case s == nil:
		return fmt.Sprintf("%s.%s.source: Field required", at, kind)
	case s.Type != "base64":
		return fmt.Sprintf("%s.%s.source.type: the offline stand-in takes only 'base64' sources, not %q (the API also takes url and file sources; Bedrock only base64)", at, kind, s.Type)
	}
	return ""
}

func checkImage(at string, s *Source, many bool) (attachment, string) {
	if msg := checkSource(at, "image", s); msg != "" {
		return attachment{}, msg
	}
	path := at + ".image.source.base64"
	if !slices.Contains(imageTypes, s.MediaType) {
		return attachment{}, path + ".media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
	}
	if s.Data == "" {
		return attachment{}, path + ": image cannot be empty"
	}
	if len(s.Data) > maxImageBase64 {
		return attachment{}, fmt.Sprintf("%s: image exceeds 5 MB maximum: %d bytes > %d bytes", path, len(s.Data), maxImageBase64)
	}
	raw, err := base64.StdEncoding.DecodeString(s.Data)
	if err != nil {
		return attachment{}, path + ": invalid base64 data"
	}
	if sniff(raw) != s.MediaType {
		return attachment{}, path + ".data: Image does not match the provided media type " + s.MediaType
	}
	w, h, err := imageSize(s.MediaType, raw)
	if err != nil || w < 1 || h < 1 {
		return attachment{}, path + ".data: Could not process image"
	}
	if w > maxImageSide || h > maxImageSide {
		return attachment{}, fmt.Sprintf("%s.data: At least one of the image dimensions exceed max allowed size: %d pixels", path, maxImageSide)
	}
	if many && (w > manyImageSide || h > manyImageSide) {
		return attachment{}, fmt.Sprintf("%s.data: At least one of the image dimensions exceed max allowed size for many-image requests: %d pixels", path, manyImageSide)
	}
	return attachment{image: true, mediaType: s.MediaType, width: w, height: h, sum: sha256.Sum256(raw)}, ""
}

func checkDocument(at string, s *Source) (attachment, string) {
	if msg := checkSource(at, "document", s); msg != "" {
		return attachment{}, msg
	}
	if s.MediaType != pdfType {
		return attachment{}, at + ".document.source.base64.media_type: Input should be 'application/pdf'"
	}
	// The API names these paths after the PDF source ("messages.0.
	// content.0.pdf.source.base64.data: The PDF specified was not valid.").
	path := at + ".pdf.source.base64"
	if s.Data == "" {
		return attachment{}, path + ".data: PDF cannot be empty"
	}
	raw, err := base64.StdEncoding.DecodeString(s.Data)
	if err != nil {
		return attachment{}, path + ": invalid base64 data"
	}
	pages, encrypted, err := pdfInfo(raw)
	switch {
	case err != nil:
		return attachment{}, path + ".data: The PDF specified was not valid."
	case encrypted:
		return attachment{}, path + ".data: The PDF specified is password protected."
	}
	return attachment{mediaType: pdfType, pages: pages, sum: sha256.Sum256(raw)}, ""
}

// sniff names the type of b by its magic bytes, "" when none is known.
func sniff(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(b, []byte{0xff, 0xd8, 0xff}):
		return "image/jpeg"
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return "image/gif"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "image/webp"
	case bytes.HasPrefix(b, []byte("%PDF-")):
		return pdfType
	}
	return ""
}

// imageSize reads an image's dimensions from its header, without decoding
// the pixels.
func imageSize(mediaType string, b []byte) (w, h int, err error) {
	var cfg image.Config
	switch mediaType {
	case "image/png":
		cfg, err = png.DecodeConfig(bytes.NewReader(b))
	case "image/jpeg":
		cfg, err = jpeg.DecodeConfig(bytes.NewReader(b))
	case "image/gif":
		cfg, err = gif.DecodeConfig(bytes.NewReader(b))
	case "image/webp":
		return webpSize(b)
	default:
		err = fmt.Errorf("fakemodel: no decoder for %s", mediaType)
	}
	return cfg.Width, cfg.Height, err
}

var errWebP = errors.New("fakemodel: not a WebP header the stand-in can read")

// webpSize reads the canvas size from a WebP file's first chunk (RIFF
// container, then "VP8 ", "VP8L" or "VP8X"; the WebP container and VP8L
// specifications, and RFC 6386 §9.1 for VP8's frame header).
func webpSize(b []byte) (w, h int, err error) {
	if len(b) < 20 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		return 0, 0, errWebP
	}
	d := b[20:] // the first chunk's payload
	switch string(b[12:16]) {
	case "VP8 ":
		// 3-byte frame tag, start code 9d 01 2a, then 14-bit width and
		// height (the top two bits are scaling).
		if len(d) < 10 || d[3] != 0x9d || d[4] != 0x01 || d[5] != 0x2a {
			return 0, 0, errWebP
		}
		return int(binary.LittleEndian.Uint16(d[6:8]) & 0x3fff), int(binary.LittleEndian.Uint16(d[8:10]) & 0x3fff), nil
	case "VP8L":
		// Signature 0x2f, then width-1 and height-1 in 14 bits each.
		if len(d) < 5 || d[0] != 0x2f {
			return 0, 0, errWebP
		}
		bits := binary.LittleEndian.Uint32(d[1:5])
		return int(bits&0x3fff) + 1, int(bits>>14&0x3fff) + 1, nil
	case "VP8X":
		// Flags, 3 reserved bytes, then canvas width-1 and height-1 in 24
		// bits each.
		if len(d) < 10 {
			return 0, 0, errWebP
		}
		return 1 + (int(d[4]) | int(d[5])<<8 | int(d[6])<<16), 1 + (int(d[7]) | int(d[8])<<8 | int(d[9])<<16), nil
	}
	return 0, 0, errWebP
}

// describeDeltas is the [[describe]] reply as text deltas: one line per
// attachment, lines separated by "\n", a delta per word with the space or
// newline that follows it.
func describeDeltas(as []attachment) []string {
	var out []string
	for i, a := range as {
		words := strings.Fields(a.describe())
		for k, w := range words {
			switch {
			case k < len(words)-1:
				w += " "
			case i < len(as)-1:
				w += "\n"
			}
			out = append(out, w)
		}
	}
	return out
}
