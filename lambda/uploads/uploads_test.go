package uploads_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/p2/buddy/lambda/dev/testfiles"
	"github.com/p2/buddy/lambda/uploads"
)

var limits = uploads.Limits{ImageBytes: 3_932_160, PDFBytes: 10_485_760, PDFPages: 100}

func TestDeclare(t *testing.T) {
	tests := []struct {
		name, file, contentType string
		size                    int64
		want                    error
	}{
		{"a PNG within the limit", "cat.png", uploads.PNG, 1000, nil},
		{"a PDF at its limit", "doc.pdf", uploads.PDF, limits.PDFBytes, nil},
		{"a type not on the list", "notes.txt", "text/plain", 10, uploads.ErrType},
		{"an SVG", "logo.svg", "image/svg+xml", 10, uploads.ErrType},
		{"a size of 0", "cat.png", uploads.PNG, 0, uploads.ErrSize},
		{"an image over its limit", "cat.png", uploads.PNG, limits.ImageBytes + 1, uploads.ErrSize},
		{"a PDF over its limit", "doc.pdf", uploads.PDF, limits.PDFBytes + 1, uploads.ErrSize},
		{"an image at the PDF limit", "big.jpg", uploads.JPEG, limits.PDFBytes, uploads.ErrSize},
		{"no name", " ", uploads.PNG, 10, uploads.ErrName},
		{"a name on two lines", "a\nb.png", uploads.PNG, 10, uploads.ErrName},
		{"a name too long", strings.Repeat("x", 256), uploads.PNG, 10, uploads.ErrName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := uploads.Declare(tt.file, tt.contentType, tt.size, limits)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if errors.Is(err, uploads.ErrType) && !strings.Contains(err.Error(), "image/webp, application/pdf") {
				t.Errorf("%q does not list the accepted types", err)
			}
		})
	}
}

// encode is a w×h image of type format.
func encode(_ *testing.T, format string, w, h int) []byte { return testfiles.Image(format, w, h) }

// webp1x1 is a 1×1 lossless WebP.
var webp1x1 = testfiles.Image(uploads.WebP, 1, 1)

func pngHeader(_ *testing.T, w, h int) []byte { return testfiles.PNGHeader(w, h) }

func TestInspectImage(t *testing.T) {
	tests := []struct {
		name, declared string
		body           []byte
		want           uploads.Inspection
		wantErr        string
	}{
		{"a PNG", uploads.PNG, encode(t, uploads.PNG, 30, 20), uploads.Inspection{Width: 30, Height: 20}, ""},
		{"a JPEG", uploads.JPEG, encode(t, uploads.JPEG, 64, 48), uploads.Inspection{Width: 64, Height: 48}, ""},
		{"a GIF", uploads.GIF, encode(t, uploads.GIF, 5, 7), uploads.Inspection{Width: 5, Height: 7}, ""},
		{"a WebP", uploads.WebP, webp1x1, uploads.Inspection{Width: 1, Height: 1}, ""},
		{"a PNG declared as JPEG", uploads.JPEG, encode(t, uploads.PNG, 3, 3), uploads.Inspection{}, "the file is a image/png, not a image/jpeg"},
		{"a PDF declared as PNG", uploads.PNG, []byte("%PDF-1.7\n"), uploads.Inspection{}, "is a application/pdf, not a image/png"},
		{"text declared as PNG", uploads.PNG, []byte("hello, world"), uploads.Inspection{}, "not a image/png"},
		{"a truncated PNG", uploads.PNG, encode(t, uploads.PNG, 30, 20)[:20], uploads.Inspection{}, "does not decode"},
		{"a PNG of 8000 px a side, header only", uploads.PNG, pngHeader(t, 8000, 8000), uploads.Inspection{Width: 8000, Height: 8000}, ""},
		{"a PNG over 8000 px", uploads.PNG, pngHeader(t, 8001, 10), uploads.Inspection{}, "8001×10 px; at most 8000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := uploads.InspectImage(bytes.NewReader(tt.body), tt.declared)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.wantErr != "" && (!errors.Is(err, uploads.ErrContent) || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want ErrContent saying %q", err, tt.wantErr)
			case got != tt.want:
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

var makePDF = testfiles.PDF

func TestInspectPDF(t *testing.T) {
	tests := []struct {
		name    string
		body    []byte
		want    int
		wantErr string
	}{
		{"a PDF of 3 pages", makePDF("1.7", 3, false), 3, ""},
		{"a PDF 2.0 of 1 page", makePDF("2.0", 1, false), 1, ""},
		{"a PDF at the page limit", makePDF("1.4", 100, false), 100, ""},
		{"a PDF over the page limit", makePDF("1.4", 101, false), 0, "101 pages; at most 100"},
		{"an encrypted PDF", makePDF("1.4", 1, true), 0, "encrypted"},
		{"not a PDF", []byte("GIF89a and more"), 0, "is a image/gif, not a application/pdf"},
		{"a PDF cut short", makePDF("1.7", 3, false)[:200], 0, "cannot be read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := uploads.InspectPDF(bytes.NewReader(tt.body), int64(len(tt.body)), limits.PDFPages)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.wantErr != "" && (!errors.Is(err, uploads.ErrContent) || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want ErrContent saying %q", err, tt.wantErr)
			case got.Pages != tt.want:
				t.Errorf("pages %d, want %d", got.Pages, tt.want)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		w, h, pages int
		want        int64
	}{
		{"a 1000×750 image", uploads.PNG, 1000, 750, 0, 1000},
		{"a 1×1 image rounds up", uploads.WebP, 1, 1, 0, 1},
		{"an 8000×8000 image", uploads.JPEG, 8000, 8000, 0, 85334},
		{"a PDF of 10 pages", uploads.PDF, 0, 0, 10, 30000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := uploads.Tokens(tt.contentType, tt.w, tt.h, tt.pages); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}
