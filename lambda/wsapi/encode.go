package wsapi

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// jsonEscapeWorstCase is how many bytes encoding/json can write for one
// byte of a string: a control byte becomes \u00XX, and an invalid UTF-8
// byte becomes \ufffd, six bytes each. Nothing else grows more.
const jsonEscapeWorstCase = 6

// deltaEnvelopeBytes is room for everything in an encoded delta frame but
// its text: the field names and punctuation (about 80 bytes), a requestId
// (at most MaxRequestIDLen safe characters), a conversation id (26) and a
// seq (at most 20 digits), with ample margin.
const deltaEnvelopeBytes = 1024

// MaxDeltaTextBytes is the most text one delta frame may carry so that the
// encoded frame stays within MaxFrameBytes even if every byte of the text
// has to be escaped.
const MaxDeltaTextBytes = (MaxFrameBytes - deltaEnvelopeBytes) / jsonEscapeWorstCase

// Encode returns f as a JSON text frame. HTML characters are not escaped:
// the frames are not embedded in HTML, and <, > and & are common in model
// output, so escaping them would only make frames bigger.
func Encode(f Frame) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		// Frame holds only strings, ints and a struct of ints.
		panic("wsapi: encode frame: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

// SplitText cuts text into pieces of at most max bytes that concatenate
// back to text, never cutting inside a UTF-8 encoded character (so each
// piece of valid UTF-8 is valid UTF-8 and survives JSON encoding intact).
// It returns nil for "". max must be at least utf8.UTFMax, or a character
// might not fit.
func SplitText(text string, max int) []string {
	if max < utf8.UTFMax {
		panic("wsapi: SplitText needs max >= utf8.UTFMax")
	}
	var out []string
	for len(text) > max {
		cut := max
		// A character has at most UTFMax-1 continuation bytes; backing off
		// further would only be inside invalid UTF-8, which has no
		// character to keep whole.
		for i := 0; i < utf8.UTFMax-1 && !utf8.RuneStart(text[cut]); i++ {
			cut--
		}
		if !utf8.RuneStart(text[cut]) {
			cut = max
		}
		out = append(out, text[:cut])
		text = text[cut:]
	}
	if text != "" {
		out = append(out, text)
	}
	return out
}
