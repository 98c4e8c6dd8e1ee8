package wsapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/p2/buddy/lambda/errcode"
)

// MaxTextBytes bounds the `text` of a sendMessage (UTF-8 bytes). It leaves
// room in a MaxMessageBytes frame for the other fields and for JSON escapes,
// and keeps one user turn far below what the model and a DynamoDB item
// (400 KB) can hold.
const MaxTextBytes = 100_000

// MaxRequestIDLen bounds a client's requestId, which every answer echoes.
const MaxRequestIDLen = 128

// ClientFrame is a client → server frame that ParseClientFrame accepted.
//
// ConversationID and PromptID are carried as sent: an id that does not have
// the shape of an id made here is answered not_found by the caller, exactly
// like a well-formed id that does not exist, because a malformed id is
// indistinguishable from an unknown one and must not be a separate error the
// client could probe with. An empty string is the same as leaving the field
// out (a new conversation, no saved prompt).
type ClientFrame struct {
	Action         string `json:"action"`
	RequestID      string `json:"requestId,omitempty"`
	ConversationID string `json:"conversationId,omitempty"`
	PromptID       string `json:"promptId,omitempty"`
	Text           string `json:"text,omitempty"`
	// Model is the model id a sendMessage asks for ("": the
	// conversation's, or the default); Effort its effort level.
	Model  string `json:"model,omitempty"`
	Effort string `json:"effort,omitempty"`
	// Thinking turns extended thinking on with a budget (zero: off).
	Thinking Thinking `json:"thinking,omitzero"`
	// Attachments are the upload ids a sendMessage carries (1 to
	// MaxAttachments; the text may then be empty).
	Attachments []string `json:"attachments,omitempty"`
	// MessageID names the reply a stop or resume is about.
	MessageID string `json:"messageId,omitempty"`
	// AfterSeq is the last seq of the reply a resume already has (-1:
	// none).
	AfterSeq int `json:"afterSeq,omitempty"`
}

// Thinking is a sendMessage's extended thinking request.
type Thinking struct {
	BudgetTokens int `json:"budgetTokens"`
}

// ProtocolError is why a frame was refused: Code and Message go to the
// client in an `error` frame, RequestID too when the frame carried a valid
// one, so the client can tell which request failed even when the rest of the
// frame was bad.
type ProtocolError struct {
	Code      string
	Message   string
	RequestID string
}

func badRequest(format string, a ...any) *ProtocolError {
	return &ProtocolError{Code: errcode.BadRequest, Message: fmt.Sprintf(format, a...)}
}

// fields of a client frame, as named on the wire.
const (
	fieldAction         = "action"
	fieldRequestID      = "requestId"
	fieldConversationID = "conversationId"
	fieldPromptID       = "promptId"
	fieldText           = "text"
	fieldMessageID      = "messageId"
	fieldAfterSeq       = "afterSeq"
	fieldModel          = "model"
	fieldEffort         = "effort"
	fieldThinking       = "thinking"
	fieldAttachments    = "attachments"
	fieldBudgetTokens   = "budgetTokens"
)

// maxSeq bounds afterSeq: far above any reply's frames, and within int32
// so it means the same on every platform.
const maxSeq = 1<<31 - 1

func (f *ClientFrame) field(name string) *string {
	switch name {
	case fieldAction:
		return &f.Action
	case fieldRequestID:
		return &f.RequestID
	case fieldConversationID:
		return &f.ConversationID
	case fieldPromptID:
		return &f.PromptID
	case fieldText:
		return &f.Text
	case fieldMessageID:
		return &f.MessageID
	case fieldModel:
		return &f.Model
	case fieldEffort:
		return &f.Effort
	}
	return nil
}

// ParseClientFrame decodes and validates one client frame strictly: a
// single JSON object of known fields, each at most once and a string, in
// valid UTF-8, within MaxMessageBytes. Errors have code too_large or
// bad_request. Problems are reported in the order a reader meets them:
// size, encoding, JSON syntax, then fields in document order, then what the
// action requires.
func ParseClientFrame(data []byte) (ClientFrame, *ProtocolError) {
	if len(data) > MaxMessageBytes {
		return ClientFrame{}, &ProtocolError{Code: errcode.TooLarge,
			Message: fmt.Sprintf("frame is %d bytes; the limit is %d", len(data), MaxMessageBytes)}
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD; the client
	// should learn its frame was mangled instead.
	if !utf8.Valid(data) {
		return ClientFrame{}, badRequest("frame is not valid UTF-8")
	}

	var (
		f         ClientFrame
		present   = map[string]bool{}
		first     *ProtocolError // first field problem, in document order
		requestID string         // a valid requestId, to answer even a bad frame
	)
	note := func(format string, a ...any) {
		if first == nil {
			first = badRequest(format, a...)
		}
	}
	answer := func(p *ProtocolError) (ClientFrame, *ProtocolError) {
		p.RequestID = requestID
		return ClientFrame{}, p
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	// Numbers are only ever a wrong type here; as json.Number even 1e999
	// decodes, so it is reported as a number rather than as broken JSON.
	dec.UseNumber()
	tok, err := dec.Token()
	if err == io.EOF {
		return answer(badRequest("frame is empty; send a JSON object"))
	}
	if err != nil {
		return answer(syntaxError(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return answer(badRequest("frame must be a JSON object"))
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return answer(syntaxError(err))
		}
		name, _ := tok.(string) // a Decoder only yields string keys inside an object
		var value any
		if err := dec.Decode(&value); err != nil {
			return answer(syntaxError(err))
		}
		// Only the first problem is reported, but the walk goes on: a
		// requestId further on still lets the error frame answer it.
		dst := f.field(name)
		s, isString := value.(string)
		switch {
		case present[name]:
			note("field %s appears more than once", quoteName(name))
		case name == fieldAfterSeq:
			n, isNumber := value.(json.Number)
			seq, err := strconv.ParseInt(string(n), 10, 64)
			if !isNumber || err != nil || seq < -1 || seq > maxSeq {
				note("field %q must be a whole number from -1 to %d", name, maxSeq)
			}
			f.AfterSeq = int(seq)
		case name == fieldThinking:
			t, problem := parseThinking(value)
			if problem != "" {
				note("%s", problem)
			}
			f.Thinking = t
		case name == fieldAttachments:
			a, problem := parseAttachments(value)
			if problem != "" {
				note("%s", problem)
			}
			f.Attachments = a
		case dst == nil:
			note("unknown field %s", quoteName(name))
		case !isString:
			note("field %q must be a string, not %s", name, jsonType(value))
		default:
			*dst = s
			if name == fieldRequestID && requestID == "" && ValidRequestID(s) {
				requestID = s
			}
		}
		present[name] = true
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return answer(syntaxError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return answer(badRequest("unexpected data after the JSON object; send one object per frame"))
	}
	if first != nil {
		return answer(first)
	}
	if p := f.validate(func(name string) bool { return present[name] }); p != nil {
		return answer(p)
	}
	return f, nil
}

func (f ClientFrame) validate(present func(name string) bool) *ProtocolError {
	if !present(fieldAction) {
		return badRequest("field %q is required (%q, %q, %q or %q)", fieldAction, ActionSendMessage, ActionStop, ActionResume, ActionPing)
	}
	switch f.Action {
	case ActionSendMessage:
		if !present(fieldRequestID) {
			return badRequest("field %q is required", fieldRequestID)
		}
		if !ValidRequestID(f.RequestID) {
			return badRequestID()
		}
		if len(f.Attachments) == 0 && !present(fieldText) {
			return badRequest("field %q is required", fieldText)
		}
		if len(f.Attachments) == 0 && strings.TrimSpace(f.Text) == "" {
			return badRequest("field %q must not be empty", fieldText)
		}
		if len(f.Text) > MaxTextBytes {
			return &ProtocolError{Code: errcode.TooLarge,
				Message: fmt.Sprintf("text is %d bytes; the limit is %d", len(f.Text), MaxTextBytes)}
		}
		if p := f.only(present, ActionSendMessage, fieldRequestID, fieldConversationID, fieldPromptID, fieldText, fieldModel, fieldEffort, fieldThinking, fieldAttachments); p != nil {
			return p
		}
	case ActionStop, ActionResume:
		if !present(fieldRequestID) {
			return badRequest("field %q is required", fieldRequestID)
		}
		if !ValidRequestID(f.RequestID) {
			return badRequestID()
		}
		if !present(fieldMessageID) || f.MessageID == "" {
			return badRequest("field %q is required", fieldMessageID)
		}
		if f.Action == ActionResume && !present(fieldAfterSeq) {
			return badRequest("field %q is required (-1 to replay the reply from its first frame)", fieldAfterSeq)
		}
		allowed := []string{fieldRequestID, fieldMessageID}
		if f.Action == ActionResume {
			allowed = append(allowed, fieldAfterSeq)
		}
		if p := f.only(present, f.Action, allowed...); p != nil {
			return p
		}
	case ActionPing:
		if present(fieldRequestID) && !ValidRequestID(f.RequestID) {
			return badRequestID()
		}
		if p := f.only(present, ActionPing, fieldRequestID); p != nil {
			return p
		}
	default:
		return badRequest("unknown action; use %q, %q, %q or %q", ActionSendMessage, ActionStop, ActionResume, ActionPing)
	}
	return nil
}

// allFields are the fields a client frame may have, in the order a
// refusal names them.
var allFields = []string{fieldRequestID, fieldConversationID, fieldPromptID, fieldText, fieldModel, fieldEffort, fieldThinking, fieldAttachments, fieldMessageID, fieldAfterSeq}

// MaxAttachments is the most uploads one message may carry.
const MaxAttachments = 20

// parseAttachments reads a list of 1 to MaxAttachments distinct upload
// ids. An id the server could never have made is kept, to be answered
// not_found like an unknown one.
func parseAttachments(v any) ([]string, string) {
	want := fmt.Sprintf(`field "attachments" must be a list of 1 to %d distinct upload ids`, MaxAttachments)
	list, ok := v.([]any)
	if !ok || len(list) == 0 || len(list) > MaxAttachments {
		return nil, want
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		id, ok := x.(string)
		if !ok || id == "" || slices.Contains(out, id) {
			return nil, want
		}
		out = append(out, id)
	}
	return out, ""
}

// parseThinking reads {"budgetTokens": N}: an object with that one whole
// number. Whether N suits the model and max tokens is the message path's
// to say.
func parseThinking(v any) (Thinking, string) {
	const want = `field "thinking" must be an object {"budgetTokens": N} with N a whole number`
	obj, ok := v.(map[string]any)
	if !ok || len(obj) != 1 {
		return Thinking{}, want
	}
	n, ok := obj[fieldBudgetTokens].(json.Number)
	if !ok {
		return Thinking{}, want
	}
	b, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || b < 1 || b > maxSeq {
		return Thinking{}, want
	}
	return Thinking{BudgetTokens: int(b)}, ""
}

// only refuses a frame of action that has a field other than allowed.
func (f ClientFrame) only(present func(string) bool, action string, allowed ...string) *ProtocolError {
	for _, name := range allFields {
		if present(name) && !slices.Contains(allowed, name) {
			return badRequest("field %q is not allowed in a %q frame", name, action)
		}
	}
	return nil
}

func badRequestID() *ProtocolError {
	return badRequest("field %q must be 1 to %d characters of A-Z a-z 0-9 . _ : -", fieldRequestID, MaxRequestIDLen)
}

// ValidRequestID reports whether s is a requestId the protocol accepts:
// 1 to MaxRequestIDLen characters of [A-Za-z0-9._:-]. The narrow alphabet
// makes it safe to echo into frames and logs as is.
func ValidRequestID(s string) bool {
	if len(s) == 0 || len(s) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// syntaxError describes a decoding failure without echoing the frame.
func syntaxError(err error) *ProtocolError {
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("frame is not valid JSON: it ends early")
	case errors.As(err, &se):
		return badRequest("frame is not valid JSON (at offset %d)", se.Offset)
	}
	return badRequest("frame is not valid JSON")
}

// quoteName quotes a client-chosen field name for an error message, cut
// short so a huge name cannot make a huge error frame.
func quoteName(name string) string {
	const max = 64
	if len(name) <= max {
		return fmt.Sprintf("%q", name)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…", name[:cut])
}

// jsonType names the JSON type of a decoded value.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "a string"
}
