package bench

import (
	"bytes"
	"image/png"
	"testing"

	"github.com/p2/buddy/lambda/uploads"
)

// The files of the attachment figures are what complete accepts, at the
// exact sizes asked, and the PNGs decode whole.
func TestAttachmentFiles(t *testing.T) {
	b, w, h := noisePNG(300<<10, 1)
	if len(b) != 300<<10 {
		t.Errorf("noise PNG of %d bytes, want %d", len(b), 300<<10)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() != w || img.Bounds().Dy() != h {
		t.Fatalf("noise PNG decodes to %v, %v; want %d×%d", img, err, w, h)
	}
	if in, err := uploads.InspectImage(bytes.NewReader(b), uploads.PNG); err != nil || in.Width != w || in.Height != h {
		t.Errorf("complete's check of the PNG: %+v %v", in, err)
	}
	pdf := textPDF(100, 2<<20)
	if len(pdf) != 2<<20 {
		t.Errorf("PDF of %d bytes, want %d", len(pdf), 2<<20)
	}
	if in, err := uploads.InspectPDF(bytes.NewReader(pdf), int64(len(pdf)), 100); err != nil || in.Pages != 100 {
		t.Errorf("complete's check of the PDF: %+v %v", in, err)
	}
	// The largest request fills the limit and no more.
	limit, sizes := largestRequest(60)
	var wire int64 = 60
	for _, s := range sizes {
		wire += int64(s+2) / 3 * 4
	}
	if wire > limit || limit-wire > 4 || len(sizes) > maxAttachments {
		t.Errorf("largest request %v takes %d of %d bytes", sizes, wire, limit)
	}
}
