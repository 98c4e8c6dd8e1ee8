// Package uploads knows what Buddy accepts as an attachment: the types and
// limits a declared upload must meet (Declare), and the checks of what
// actually arrived in S3 (Inspect): the bytes are the declared type, an
// image's header is sound and within 8000 px a side, a PDF is a PDF, not
// encrypted and within the page limit. It also says what an attachment
// costs in the model's input (Tokens). It reads streams and files; the
// S3 and DynamoDB calls around it belong to httpapi and store.
package uploads

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // image.DecodeConfig of the accepted types
	_ "image/jpeg"
	_ "image/png"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	_ "golang.org/x/image/webp"
	"rsc.io/pdf"
)

// The accepted media types, as S3 stores them and the model receives them.
const (
	JPEG = "image/jpeg"
	PNG  = "image/png"
	GIF  = "image/gif"
	WebP = "image/webp"
	PDF  = "application/pdf"
)

// Types lists the accepted media types, images first.
var Types = []string{JPEG, PNG, GIF, WebP, PDF}

// MaxSide is the most pixels an image may have on either side (Claude's
// limit for a request of up to 20 images).
const MaxSide = 8000

// MaxNameBytes bounds an upload's name (a file name, shown back to the
// user).
const MaxNameBytes = 255

// Limits are the configured bounds (MAX_IMAGE_BYTES, MAX_PDF_BYTES,
// MAX_PDF_PAGES).
type Limits struct {
	ImageBytes int64
	PDFBytes   int64
	PDFPages   int
}

// Why a declared upload or what arrived is refused.
var (
	// ErrType: a media type that is not accepted (400).
	ErrType = errors.New("uploads: type not accepted")
	// ErrSize: a size below 1 or over its type's limit (413).
	ErrSize = errors.New("uploads: size out of bounds")
	// ErrName: an empty or overlong name, or one that is not text (400).
	ErrName = errors.New("uploads: bad name")
	// ErrContent: what arrived is not what was declared, or not
	// acceptable (400, the upload rejected).
	ErrContent = errors.New("uploads: content refused")
)

// refusal is an error that says what is wrong in words for a person.
type refusal struct {
	kind error
	msg  string
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.kind }

func refuse(kind error, format string, a ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, a...)}
}

// Declare checks an upload as the client declares it, before anything is
// sent: its name, type and size.
func Declare(name, contentType string, size int64, lim Limits) error {
	switch {
	case strings.TrimSpace(name) == "" || len(name) > MaxNameBytes || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\r\n"):
		return refuse(ErrName, "name must be 1 to %d bytes of text on one line", MaxNameBytes)
	case !slices.Contains(Types, contentType):
		return refuse(ErrType, "contentType %q is not accepted; use one of %s", contentType, strings.Join(Types, ", "))
	}
	max := lim.ImageBytes
	if contentType == PDF {
		max = lim.PDFBytes
	}
	if size < 1 || size > max {
		return refuse(ErrSize, "size must be from 1 to %d bytes for %s", max, contentType)
	}
	return nil
}

// Sniff names the accepted type whose signature the bytes start with, or
// "" when none does.
func Sniff(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("\xff\xd8\xff")):
		return JPEG
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return PNG
	case bytes.HasPrefix(head, []byte("GIF87a")), bytes.HasPrefix(head, []byte("GIF89a")):
		return GIF
	case len(head) >= 12 && bytes.Equal(head[:4], []byte("RIFF")) && bytes.Equal(head[8:12], []byte("WEBP")):
		return WebP
	case bytes.HasPrefix(head, []byte("%PDF-")):
		return PDF
	}
	return ""
}

// SniffBytes is how many leading bytes Sniff needs.
const SniffBytes = 12

// Inspection is what the checks found out of an accepted upload.
type Inspection struct {
	Width, Height int // images
	Pages         int // PDFs
}

// InspectImage checks that r (the object from its first byte) is an image
// of the declared type whose header decodes, with both sides within
// MaxSide. It reads the header only, never the whole image.
func InspectImage(r io.Reader, contentType string) (Inspection, error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(SniffBytes)
	if got := Sniff(head); got != contentType {
		return Inspection{}, mismatch(got, contentType)
	}
	cfg, _, err := image.DecodeConfig(br)
	if err != nil {
		return Inspection{}, refuse(ErrContent, "the %s's header does not decode (%v): the file is damaged or cut short", contentType, err)
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > MaxSide || cfg.Height > MaxSide {
		return Inspection{}, refuse(ErrContent, "the image is %d×%d px; at most %d px a side", cfg.Width, cfg.Height, MaxSide)
	}
	return Inspection{Width: cfg.Width, Height: cfg.Height}, nil
}

// InspectPDF checks that f, size bytes, is a PDF that is not encrypted
// and has at most maxPages pages. It reads the file's cross-reference
// table and page tree, not its content.
func InspectPDF(f io.ReaderAt, size int64, maxPages int) (Inspection, error) {
	head := make([]byte, SniffBytes)
	n, _ := f.ReadAt(head, 0)
	if got := Sniff(head[:n]); got != PDF {
		return Inspection{}, mismatch(got, PDF)
	}
	asked := false
	r, err := pdf.NewReaderEncrypted(pdf17{f}, size, func() string { asked = true; return "" })
	// Encrypted: a password was asked for, the encryption is one the
	// parser does not know, or the empty user password opened it (the
	// content is still encrypted).
	encrypted := asked || (err != nil && strings.Contains(strings.ToLower(err.Error()), "encrypt")) ||
		(err == nil && !r.Trailer().Key("Encrypt").IsNull())
	switch {
	case encrypted:
		return Inspection{}, refuse(ErrContent, "the PDF is encrypted; send one without a password")
	case err != nil:
		return Inspection{}, refuse(ErrContent, "the PDF cannot be read (%v): the file is damaged or cut short", err)
	}
	pages, err := numPages(r)
	switch {
	case err != nil:
		return Inspection{}, refuse(ErrContent, "the PDF's page tree cannot be read (%v)", err)
	case pages < 1:
		return Inspection{}, refuse(ErrContent, "the PDF has no pages")
	case pages > maxPages:
		return Inspection{}, refuse(ErrContent, "the PDF has %d pages; at most %d", pages, maxPages)
	}
	return Inspection{Pages: pages}, nil
}

// numPages is the page count of the document's page tree; the parser
// panics on some malformed files, which are then refused like others.
func numPages(r *pdf.Reader) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed PDF: %v", p)
		}
	}()
	return r.NumPage(), nil
}

// pdf17 shows a PDF 2.0 file's header as 1.7's: the parser reads only
// 1.x headers, and 2.0 files are read the same way for what is checked
// here (cross-reference, trailer, page tree).
type pdf17 struct{ io.ReaderAt }

func (p pdf17) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.ReaderAt.ReadAt(b, off)
	const real, shown = "%PDF-2.0", "%PDF-1.7"
	if off < int64(len(real)) {
		head := b[:n]
		if end := int64(len(real)) - off; int64(len(head)) > end {
			head = head[:end]
		}
		if string(head) == real[off:off+int64(len(head))] {
			copy(head, shown[off:])
		}
	}
	return n, err
}

func mismatch(got, declared string) error {
	if got == "" {
		return refuse(ErrContent, "the file is not a %s (its first bytes are none of the accepted types)", declared)
	}
	return refuse(ErrContent, "the file is a %s, not a %s as declared", got, declared)
}

// Tokens is what an attachment counts in the model's input, by Anthropic's
// published estimates: an image (width × height) / 750 tokens, rounded up;
// a PDF 3,000 tokens a page.
func Tokens(contentType string, width, height, pages int) int64 {
	if contentType == PDF {
		return 3000 * int64(pages)
	}
	return (int64(width)*int64(height) + 749) / 750
}
