// Package testfiles makes the files attachment tests upload: small images
// of the accepted types and PDFs with a given number of pages, encrypted
// or not, written the way real tools write them (a PDF with a classic
// cross-reference table at the right offsets).
package testfiles

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"strings"
)

// Image is a w×h image encoded as contentType ("image/png", "image/jpeg"
// or "image/gif"; "image/webp" gives a 1×1 lossless WebP, whatever w×h).
func Image(contentType string, w, h int) []byte {
	img := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.Black, color.White})
	var b bytes.Buffer
	var err error
	switch contentType {
	case "image/png":
		err = png.Encode(&b, img)
	case "image/jpeg":
		err = jpeg.Encode(&b, img, nil)
	case "image/gif":
		err = gif.Encode(&b, img, nil)
	case "image/webp":
		return bytes.Clone(webp1x1)
	default:
		panic("testfiles: no image of type " + contentType)
	}
	if err != nil {
		panic(err)
	}
	return b.Bytes()
}

// PNGHeader is the start of a PNG of w×h: its signature and header chunk,
// all that a check of its size reads (none of its pixels: a file this
// short claims any size without costing its memory).
func PNGHeader(w, h int) []byte {
	var full bytes.Buffer
	if err := png.Encode(&full, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		panic(err)
	}
	out := bytes.Clone(full.Bytes()[:33])
	binary.BigEndian.PutUint32(out[16:20], uint32(w))
	binary.BigEndian.PutUint32(out[20:24], uint32(h))
	binary.BigEndian.PutUint32(out[29:33], crc32.ChecksumIEEE(out[12:29]))
	return out
}

// webp1x1 is a 1×1 lossless WebP.
var webp1x1, _ = base64.StdEncoding.DecodeString("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")

// PDF is a PDF of the given version with pages empty pages; encrypted
// adds a Standard security handler to its trailer whose user password is
// not empty.
func PDF(version string, pages int, encrypted bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%%PDF-%s\n", version)
	var offsets []int
	obj := func(body string) {
		offsets = append(offsets, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(offsets), body)
	}
	kids := make([]string, pages)
	for i := range kids {
		kids[i] = fmt.Sprintf("%d 0 R", 3+i)
	}
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), pages))
	for range pages {
		obj("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>")
	}
	trailerExtra := ""
	if encrypted {
		obj("<< /Filter /Standard /V 1 /R 2 /O <" + strings.Repeat("ab", 32) + "> /U <" + strings.Repeat("cd", 32) + "> /P -4 >>")
		trailerExtra = fmt.Sprintf(" /Encrypt %d 0 R /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>]", len(offsets))
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, o := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, trailerExtra, xref)
	return b.Bytes()
}
