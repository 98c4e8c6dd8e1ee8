package fakemodel

import (
	"bytes"
	"compress/zlib"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// pdfInfo reads what the stand-in needs of a PDF: whether it is encrypted
// and, when it is not, how many pages it has. It is a scan, not a PDF
// reader:
//
//   - A PDF starts with "%PDF-" and has "%%EOF" in its last 1024 bytes (a
//     truncated file usually has not).
//   - It is encrypted when a trailer dictionary, or a cross-reference
//     stream's dictionary (/Type /XRef, PDF 1.5), has an /Encrypt entry.
//   - Its pages are the objects whose dictionary has /Type /Page (a page
//     tree node, /Type /Pages, is not one). Objects are read in file order,
//     skipping stream data by its /Length, so that a later definition of an
//     object number (an incremental update) replaces the earlier one; the
//     objects packed in object streams (/Type /ObjStm, FlateDecode, PDF 1.5)
//     are inflated and read too.
//
// Limits, all towards counting what a viewer would not show: a page object
// that is no longer in the page tree (deleted by an incremental update that
// did not free its number, or never linked) still counts, and a page tree's
// /Count is not consulted. Object streams with another filter than
// FlateDecode (or with predictors) are not read, so their pages are missed;
// then a file with no page found at all is refused as not valid. Nothing in
// an encrypted file is counted.
func pdfInfo(b []byte) (pages int, encrypted bool, err error) {
	if !bytes.HasPrefix(b, []byte("%PDF-")) || !bytes.Contains(b[max(0, len(b)-1024):], []byte("%%EOF")) {
		return 0, false, errNotPDF
	}
	for i := 0; ; {
		k := bytes.Index(b[i:], []byte("trailer"))
		if k < 0 {
			break
		}
		i += k + len("trailer")
		if d, _ := readDict(b, i); d != nil && d.has("Encrypt") {
			return 0, true, nil
		}
	}

	isPage := map[int]bool{} // object number → its last definition is a page
	inflated := 0
	for pos := 0; ; {
		loc := objHeader.FindSubmatchIndex(b[pos:])
		if loc == nil {
			break
		}
		num, _ := strconv.Atoi(string(b[pos+loc[2] : pos+loc[3]]))
		d, end := readDict(b, pos+loc[1])
		pos = end
		isPage[num] = d != nil && d["Type"] == "/Page"
		if d == nil {
			continue
		}
		if d["Type"] == "/XRef" && d.has("Encrypt") {
			return 0, true, nil
		}
		data, after, ok := streamData(b, end, d)
		if !ok {
			continue
		}
		pos = after
		if d["Type"] != "/ObjStm" || !flate(d["Filter"]) || d.has("DecodeParms") {
			continue
		}
		objs, err := inflate(data, maxInflated-inflated)
		if err != nil {
			return 0, false, err
		}
		inflated += len(objs)
		if err := objectStream(objs, d, isPage); err != nil {
			return 0, false, err
		}
	}
	for _, p := range isPage {
		if p {
			pages++
		}
	}
	if pages == 0 {
		return 0, false, errNotPDF
	}
	return pages, false, nil
}

var (
	errNotPDF = errors.New("fakemodel: not a PDF the stand-in can read")
	// objHeader is an indirect object's "N G obj".
	objHeader = regexp.MustCompile(`(\d+)\s+\d+\s+obj\b`)
)

// maxInflated bounds what one PDF's object streams may inflate to.
const maxInflated = 64 << 20

// flate reports whether a /Filter value is FlateDecode alone.
func flate(filter string) bool {
	f := strings.Join(strings.Fields(filter), "")
	return f == "/FlateDecode" || f == "[/FlateDecode]"
}

func inflate(data []byte, limit int) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, errNotPDF
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if err != nil || len(out) > limit {
		return nil, errNotPDF
	}
	return out, nil
}

// objectStream reads the objects of an inflated object stream: /N pairs of
// "number offset" before /First, each object at First+offset.
func objectStream(objs []byte, d pdfDict, isPage map[int]bool) error {
	n, err1 := strconv.Atoi(d["N"])
	first, err2 := strconv.Atoi(d["First"])
	if err1 != nil || err2 != nil || n < 0 || first < 0 || first > len(objs) {
		return errNotPDF
	}
	l := lexer{b: objs[:first]}
	nums := make([]int, 0, min(n, first))
	offs := make([]int, 0, min(n, first))
	for range n {
		a, b := l.next(), l.next()
		num, err1 := strconv.Atoi(string(a.text))
		off, err2 := strconv.Atoi(string(b.text))
		if a.kind != tokNumber || b.kind != tokNumber || err1 != nil || err2 != nil || off < 0 || first+off > len(objs) {
			return errNotPDF
		}
		nums, offs = append(nums, num), append(offs, first+off)
	}
	for k, num := range nums {
		d, _ := readDict(objs, offs[k])
		isPage[num] = d != nil && d["Type"] == "/Page"
	}
	return nil
}

// streamData finds the data of the stream that follows a dictionary ending
// at p, if one does: by its /Length when that is a direct number that lands
// on "endstream", else up to the next "endstream". after is past
// "endstream".
func streamData(b []byte, p int, d pdfDict) (data []byte, after int, ok bool) {
	l := lexer{b: b, i: p}
	if t := l.next(); t.kind != tokAtom || string(t.text) != "stream" {
		return nil, p, false
	}
	start := l.i
	switch {
	case bytes.HasPrefix(b[start:], []byte("\r\n")):
		start += 2
	case start < len(b) && (b[start] == '\n' || b[start] == '\r'):
		start++
	}
	if n, err := strconv.Atoi(d["Length"]); err == nil && n >= 0 && start+n <= len(b) {
		rest := bytes.TrimLeft(b[start+n:], "\r\n \t")
		if bytes.HasPrefix(rest, []byte("endstream")) {
			return b[start : start+n], len(b) - len(rest) + len("endstream"), true
		}
	}
	k := bytes.Index(b[start:], []byte("endstream"))
	if k < 0 {
		return nil, len(b), false
	}
	return bytes.TrimRight(b[start:start+k], "\r\n"), start + k + len("endstream"), true
}

// pdfDict is a dictionary's top level: each key (without its slash) and the
// text of its value ("/Page", "12", "5 0 R", "[/FlateDecode]", "<<...>>").
type pdfDict map[string]string

func (d pdfDict) has(key string) bool { _, ok := d[key]; return ok }

// readDict reads the dictionary that starts at p (after white space and
// comments) and returns it with the position after its ">>"; nil and p when
// there is none or it is malformed.
func readDict(b []byte, p int) (pdfDict, int) {
	l := lexer{b: b, i: p}
	if t := l.next(); t.kind != tokDictOpen {
		return nil, p
	}
	d := pdfDict{}
	for {
		k := l.next()
		switch k.kind {
		case tokDictClose:
			return d, l.i
		case tokName:
		default:
			return nil, p
		}
		start := l.i
		switch v := l.next(); v.kind {
		case tokDictOpen, tokArrayOpen:
			if !l.skipNested() {
				return nil, p
			}
		case tokNumber:
			// An indirect reference is "N G R".
			save := l.i
			if g, r := l.next(), l.next(); g.kind != tokNumber || r.kind != tokAtom || string(r.text) != "R" {
				l.i = save
			}
		case tokEOF, tokDictClose, tokArrayClose:
			return nil, p
		}
		d[string(k.text[1:])] = string(bytes.TrimSpace(b[start:l.i]))
	}
}

// The PDF tokens the scan tells apart.
const (
	tokEOF = iota
	tokName
	tokNumber
	tokAtom // a keyword (obj, stream, R, true, null) or a stray delimiter
	tokString
	tokDictOpen
	tokDictClose
	tokArrayOpen
	tokArrayClose
)

type token struct {
	kind int
	text []byte
}

// lexer splits PDF syntax into tokens (ISO 32000-1 §7.2-7.3), skipping white
// space and comments.
type lexer struct {
	b []byte
	i int
}

func pdfSpace(c byte) bool {
	return c == 0 || c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '
}

func pdfDelim(c byte) bool { return strings.IndexByte("()<>[]{}/%", c) >= 0 }

func (l *lexer) next() token {
	for l.i < len(l.b) {
		switch c := l.b[l.i]; {
		case pdfSpace(c):
			l.i++
			continue
		case c == '%':
			for l.i < len(l.b) && l.b[l.i] != '\n' && l.b[l.i] != '\r' {
				l.i++
			}
			continue
		}
		break
	}
	if l.i >= len(l.b) {
		return token{kind: tokEOF}
	}
	start := l.i
	two := func(s string) bool { return bytes.HasPrefix(l.b[l.i:], []byte(s)) }
	tok := func(kind int) token { return token{kind: kind, text: l.b[start:l.i]} }
	switch c := l.b[l.i]; {
	case c == '/':
		l.i++
		for l.i < len(l.b) && !pdfSpace(l.b[l.i]) && !pdfDelim(l.b[l.i]) {
			l.i++
		}
		return tok(tokName)
	case two("<<"):
		l.i += 2
		return tok(tokDictOpen)
	case two(">>"):
		l.i += 2
		return tok(tokDictClose)
	case c == '<':
		k := bytes.IndexByte(l.b[l.i:], '>')
		if k < 0 {
			l.i = len(l.b)
			return token{kind: tokEOF}
		}
		l.i += k + 1
		return tok(tokString)
	case c == '(':
		depth := 0
		for ; l.i < len(l.b); l.i++ {
			switch l.b[l.i] {
			case '\\':
				l.i++
			case '(':
				depth++
			case ')':
				if depth--; depth == 0 {
					l.i++
					return tok(tokString)
				}
			}
		}
		return token{kind: tokEOF}
	case c == '[':
		l.i++
		return tok(tokArrayOpen)
	case c == ']':
		l.i++
		return tok(tokArrayClose)
	case pdfDelim(c):
		l.i++
		return tok(tokAtom)
	}
	for l.i < len(l.b) && !pdfSpace(l.b[l.i]) && !pdfDelim(l.b[l.i]) {
		l.i++
	}
	if _, err := strconv.ParseFloat(string(l.b[start:l.i]), 64); err == nil {
		return tok(tokNumber)
	}
	return tok(tokAtom)
}

// skipNested skips to the end of the dictionary or array just opened,
// reporting false when the input ends first.
func (l *lexer) skipNested() bool {
	for depth := 1; depth > 0; {
		switch l.next().kind {
		case tokDictOpen, tokArrayOpen:
			depth++
		case tokDictClose, tokArrayClose:
			depth--
		case tokEOF:
			return false
		}
	}
	return true
}
