package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"math/rand/v2"
	"strings"
)

// noisePNG is a PNG of exactly size bytes that decodes whole: an opaque
// 1024-pixel-wide image of random pixels (incompressible, so its size is
// its pixels, as a photo's is), then a private ancillary chunk ("beNc",
// which decoders skip) to make up the last bytes. It returns the image's
// width and height too.
func noisePNG(size int, seed uint64) (b []byte, w, h int) {
	const width, chunk = 1024, 12 // a chunk's length, type and CRC
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'b', 'e', 'n', 'c', 'h'}))
	h = max(1, (size-4096)/(1+3*width))
	for {
		img := image.NewRGBA(image.Rect(0, 0, width, h))
		for i := 0; i < len(img.Pix); i += 4 {
			v := rng.Uint32()
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = byte(v), byte(v>>8), byte(v>>16), 0xff
		}
		var out bytes.Buffer
		if err := png.Encode(&out, img); err != nil {
			panic(err)
		}
		if over := out.Len() + chunk - size; over > 0 {
			h -= 1 + over/(1+3*width)
			if h < 1 {
				panic(fmt.Sprintf("bench: no noise PNG of %d bytes", size))
			}
			continue
		}
		enc := out.Bytes()
		iend := enc[len(enc)-chunk:] // IEND is the last chunk
		pad := make([]byte, size-len(enc)-chunk)
		var c bytes.Buffer
		c.Write(enc[:len(enc)-chunk])
		_ = binary.Write(&c, binary.BigEndian, uint32(len(pad)))
		c.WriteString("beNc")
		c.Write(pad)
		crc := crc32.NewIEEE()
		crc.Write([]byte("beNc"))
		crc.Write(pad)
		_ = binary.Write(&c, binary.BigEndian, crc.Sum32())
		c.Write(iend)
		return c.Bytes(), width, h
	}
}

// textPDF is a PDF of pages pages of exactly size bytes, written as
// lambda/dev/testfiles.PDF writes one (a classic cross-reference table at
// the right offsets), each page drawing lines of text with Helvetica from
// an uncompressed content stream; the streams share the bytes that make
// up size (the last one takes the remainder).
func textPDF(pages, size int) []byte {
	build := func(perPage, last int) []byte {
		var b bytes.Buffer
		b.WriteString("%PDF-1.7\n")
		var offsets []int
		obj := func(body string) {
			offsets = append(offsets, b.Len())
			fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(offsets), body)
		}
		// 1 catalog, 2 pages, 3 font, then each page and its content.
		kids := make([]string, pages)
		for i := range kids {
			kids[i] = fmt.Sprintf("%d 0 R", 4+2*i)
		}
		obj("<< /Type /Catalog /Pages 2 0 R >>")
		obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), pages))
		obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
		for i := range pages {
			n := perPage
			if i == pages-1 {
				n = last
			}
			obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", 5+2*i))
			s := pageText(i, n)
			obj(fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(s), s))
		}
		xref := b.Len()
		fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
		for _, o := range offsets {
			fmt.Fprintf(&b, "%010d 00000 n \n", o)
		}
		fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
		return b.Bytes()
	}
	// The frame around the streams, with streams of a fixed width so that
	// only their lengths change below.
	frame := len(build(1000, 1000)) - pages*1000
	perPage := (size - frame) / pages
	last := size - frame - perPage*(pages-1)
	out := build(perPage, last)
	// Offsets and lengths have digits of their own: settle the difference
	// in the last stream.
	for i := 0; len(out) != size && i < 4; i++ {
		last += size - len(out)
		out = build(perPage, last)
	}
	if len(out) != size {
		panic(fmt.Sprintf("bench: a PDF of %d bytes came out %d", size, len(out)))
	}
	return out
}

// pageText is a content stream of exactly n bytes (n ≥ 64) drawing lines
// of text; a comment line fills what whole lines leave.
func pageText(page, n int) string {
	var b strings.Builder
	head := "BT /F1 9 Tf 11 TL 36 760 Td\n"
	tail := "ET\n"
	b.WriteString(head)
	line := 0
	for {
		l := fmt.Sprintf("(Page %d, line %d: the quick brown fox jumps over the lazy dog.) '\n", page+1, line)
		if b.Len()+len(l)+len(tail)+2 > n {
			break
		}
		b.WriteString(l)
		line++
	}
	b.WriteString(tail)
	if rest := n - b.Len(); rest > 0 {
		b.WriteString("%" + strings.Repeat(" ", rest-1))
	}
	return b.String()
}
