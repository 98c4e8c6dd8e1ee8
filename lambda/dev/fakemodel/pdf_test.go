package fakemodel_test

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"strings"
	"testing"

	"github.com/p2/buddy/lambda/dev/fakemodel"
)

// pdfOptions shape a PDF made by pdfOf.
type pdfOptions struct {
	pages int
	// encrypt adds a standard security handler dictionary and names it in
	// the trailer's /Encrypt, as an encrypted PDF does.
	encrypt bool
	// extra objects, written after the pages, as "<body>" of "N 0 obj".
	extra []string
}

// pdfOf writes a minimal PDF by hand: catalog, one page tree node, n pages,
// a cross-reference table with the right offsets, trailer, %%EOF.
func pdfOf(o pdfOptions) []byte {
	var b bytes.Buffer
	var offsets []int
	obj := func(body string) int {
		offsets = append(offsets, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(offsets), body)
		return len(offsets)
	}
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	kids := make([]string, o.pages)
	for i := range kids {
		kids[i] = fmt.Sprintf("%d 0 R", i+3)
	}
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), o.pages))
	for range o.pages {
		obj("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << >> >>")
	}
	for _, e := range o.extra {
		obj(e)
	}
	trailer := ""
	if o.encrypt {
		n := obj("<< /Filter /Standard /V 1 /R 2 /O <0123456789abcdef0123456789abcdef> /U <fedcba9876543210fedcba9876543210> /P -44 >>")
		trailer = fmt.Sprintf(" /Encrypt %d 0 R /ID [<00112233445566778899aabbccddeeff> <00112233445566778899aabbccddeeff>]", n)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, trailer, xref)
	return b.Bytes()
}

// update appends an incremental update to pdf that redefines object num.
func update(pdf []byte, num int, body string) []byte {
	b := bytes.NewBuffer(append([]byte(nil), pdf...))
	off := b.Len()
	fmt.Fprintf(b, "%d 0 obj\n%s\nendobj\n", num, body)
	xref := b.Len()
	fmt.Fprintf(b, "xref\n%d 1\n%010d 00000 n \ntrailer\n<< /Size 99 /Root 1 0 R /Prev 0 >>\nstartxref\n%d\n%%%%EOF\n", num, off, xref)
	return b.Bytes()
}

// objStm is a compressed object stream (PDF 1.5) holding bodies as objects
// first, first+1, ...
func objStm(first int, bodies ...string) string {
	var head, objs strings.Builder
	for i, body := range bodies {
		fmt.Fprintf(&head, "%d %d ", first+i, objs.Len())
		objs.WriteString(body + "\n")
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte(head.String() + objs.String()))
	zw.Close()
	return fmt.Sprintf("<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream",
		len(bodies), head.Len(), z.Len(), z.String())
}

// contentStream is an uncompressed stream whose data is text.
func contentStream(text string) string {
	return fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(text), text)
}

func TestPDFInfo(t *testing.T) {
	page := "<< /Type /Page /Parent 2 0 R >>"
	tests := []struct {
		name          string
		pdf           []byte
		wantPages     int
		wantEncrypted bool
		wantErr       bool
	}{
		{name: "pages are counted, the page tree node is not", pdf: pdfOf(pdfOptions{pages: 3}), wantPages: 3},
		{name: "one page", pdf: pdfOf(pdfOptions{pages: 1}), wantPages: 1},
		{name: "a hundred pages", pdf: pdfOf(pdfOptions{pages: 100}), wantPages: 100},
		{name: "/Type/Page without a space is a page", pdf: pdfOf(pdfOptions{pages: 1, extra: []string{"<</Type/Page/Parent 2 0 R>>"}}), wantPages: 2},
		{name: "/Type /Page in a nested dictionary or a string is not a page",
			pdf: pdfOf(pdfOptions{pages: 1, extra: []string{"<< /Type /Annot /A << /Type /Page >> /T (/Type /Page) >>"}}), wantPages: 1},
		{name: "an object written in stream data is skipped by the stream's /Length",
			pdf: pdfOf(pdfOptions{pages: 2, extra: []string{contentStream("9 0 obj << /Type /Page >> endobj")}}), wantPages: 2},
		{name: "a page redefined by an incremental update counts once",
			pdf: update(pdfOf(pdfOptions{pages: 2}), 3, "<< /Type /Page /Parent 2 0 R /Rotate 90 >>"), wantPages: 2},
		{name: "an object that stops being a page in an update stops counting",
			pdf: update(pdfOf(pdfOptions{pages: 2}), 4, "<< /Type /XObject >>"), wantPages: 1},
		{name: "pages in a compressed object stream are counted",
			pdf: pdfOf(pdfOptions{pages: 1, extra: []string{objStm(10, page, page, "<< /Type /Font >>")}}), wantPages: 3},
		{name: "an encrypted PDF is reported, not counted", pdf: pdfOf(pdfOptions{pages: 2, encrypt: true}), wantEncrypted: true},
		{name: "a cross-reference stream with /Encrypt is encrypted",
			pdf: pdfOf(pdfOptions{pages: 1, extra: []string{"<< /Type /XRef /Size 9 /W [1 2 1] /Encrypt 8 0 R /Length 0 >>\nstream\n\nendstream"}}), wantEncrypted: true},
		{name: "bytes that are not a PDF are refused", pdf: []byte("\x89PNG\r\n\x1a\n0000"), wantErr: true},
		{name: "a PDF without pages is refused", pdf: pdfOf(pdfOptions{}), wantErr: true},
		{name: "a truncated PDF (no %%EOF at its end) is refused", pdf: pdfOf(pdfOptions{pages: 2})[:200], wantErr: true},
		{name: "a corrupt object stream is refused",
			pdf: pdfOf(pdfOptions{pages: 1, extra: []string{"<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length 5 >>\nstream\nxxxxx\nendstream"}}), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pages, encrypted, err := fakemodel.PDFInfo(tt.pdf)
			if (err != nil) != tt.wantErr || pages != tt.wantPages || encrypted != tt.wantEncrypted {
				t.Errorf("PDFInfo = %d pages, encrypted %t, error %v; want %d, %t, error %t", pages, encrypted, err, tt.wantPages, tt.wantEncrypted, tt.wantErr)
			}
		})
	}
}
