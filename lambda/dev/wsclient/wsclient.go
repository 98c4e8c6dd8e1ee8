// Package wsclient is a client of Buddy's WebSocket protocol, the one the
// dev server's tests and the benchmark both drive the API with: it dials
// with the token in the query string (as a browser must), sends client
// frames, reads server frames, and collects a reply in the order the
// protocol promises (start, deltas with seq 0..n-1, end or error), or
// what a resume sends (deltas from the client's last seq on, end or
// error).
package wsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/p2/buddy/lambda/wsapi"
)

// Conn is one client socket.
type Conn struct {
	// WS is the socket itself, for what the protocol helpers leave out
	// (a message written in several frames, a close and its status).
	WS *websocket.Conn
}

// Dial connects to wsURL with token in the query string (none when empty).
// The response is the handshake's, also on a refused upgrade (its status
// is what $connect answered).
func Dial(ctx context.Context, wsURL, token string) (*Conn, *http.Response, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, nil, err
	}
	if token != "" {
		q := u.Query()
		q.Set("token", token)
		u.RawQuery = q.Encode()
	}
	ws, resp, err := websocket.Dial(ctx, u.String(), nil)
	if err != nil {
		return nil, resp, fmt.Errorf("dial %s: %w", wsURL, err)
	}
	// API Gateway messages are at most 128 KB; anything bigger is a bug
	// the read error will show.
	ws.SetReadLimit(wsapi.MaxMessageBytes)
	return &Conn{WS: ws}, resp, nil
}

// SendRaw writes b as one text message.
func (c *Conn) SendRaw(ctx context.Context, b []byte) error {
	if err := c.WS.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// Send writes v as JSON.
func (c *Conn) Send(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.SendRaw(ctx, b)
}

// SendMessage is a sendMessage frame.
type SendMessage struct {
	Action         string `json:"action"`
	RequestID      string `json:"requestId"`
	ConversationID string `json:"conversationId,omitempty"`
	PromptID       string `json:"promptId,omitempty"`
	Text           string `json:"text"`
}

// SendMessage sends m as a sendMessage frame.
func (c *Conn) SendMessage(ctx context.Context, m SendMessage) error {
	m.Action = wsapi.ActionSendMessage
	return c.Send(ctx, m)
}

// ErrUndecodable: a text message that is not a server frame. The socket
// is still usable.
var ErrUndecodable = errors.New("wsclient: not a server frame")

// Frame is one server message as read.
type Frame struct {
	wsapi.Frame
	// Raw is the message as received; its length is what the 32 KB frame
	// limit applies to.
	Raw []byte
	// At is when the message was read, before it was decoded.
	At time.Time
}

// Read reads the next message. A message that is not JSON comes back with
// Raw and At set and an error wrapping ErrUndecodable; any other error
// means the socket failed.
func (c *Conn) Read(ctx context.Context) (Frame, error) {
	typ, b, err := c.WS.Read(ctx)
	f := Frame{Raw: b, At: time.Now()}
	if err != nil {
		return f, fmt.Errorf("read: %w", err)
	}
	if typ != websocket.MessageText {
		return f, fmt.Errorf("read: got a %v message, want text", typ)
	}
	if err := json.Unmarshal(b, &f.Frame); err != nil {
		return f, fmt.Errorf("%w: %q: %v", ErrUndecodable, b, err)
	}
	return f, nil
}

// Reply is what came back for one request.
type Reply struct {
	Start  wsapi.Frame
	Deltas []wsapi.Frame
	End    wsapi.Frame
	// Err is the error frame that ended the request, if one did.
	Err *wsapi.Frame
}

// Text is the delta texts in order: the reply as stored.
func (r Reply) Text() string {
	var b strings.Builder
	for _, d := range r.Deltas {
		b.WriteString(d.Text)
	}
	return b.String()
}

// Collect reads the frames of requestID until its end or error frame,
// failing on anything out of the protocol's order: a frame of another
// request, start twice or late, a delta before start or with a seq that
// is not the next, end before start, a frame of another type.
func (c *Conn) Collect(ctx context.Context, requestID string) (Reply, error) {
	return c.collect(ctx, requestID, -1, false)
}

// CollectResumed reads what a resume of requestID sends: no start (the
// client had it from its sendMessage), deltas whose seq runs from
// afterSeq+1 with no gap, then end or error. Out of that order it fails
// as Collect does.
func (c *Conn) CollectResumed(ctx context.Context, requestID string, afterSeq int) (Reply, error) {
	return c.collect(ctx, requestID, afterSeq, true)
}

func (c *Conn) collect(ctx context.Context, requestID string, afterSeq int, resumed bool) (Reply, error) {
	var r Reply
	started := func() bool { return resumed || r.Start.Type != "" }
	for {
		f, err := c.Read(ctx)
		if err != nil {
			return r, err
		}
		if f.RequestID != requestID {
			return r, fmt.Errorf("frame for another request: %s", f.Raw)
		}
		switch f.Type {
		case wsapi.TypeStart:
			if started() || len(r.Deltas) > 0 {
				return r, fmt.Errorf("start out of place: %s", f.Raw)
			}
			r.Start = f.Frame
		case wsapi.TypeDelta:
			if !started() {
				return r, fmt.Errorf("delta before start: %s", f.Raw)
			}
			if want := afterSeq + 1 + len(r.Deltas); f.Seq == nil || *f.Seq != want {
				return r, fmt.Errorf("delta %d has seq %s, want %d: lost, duplicated or out of order", len(r.Deltas), seqString(f.Seq), want)
			}
			r.Deltas = append(r.Deltas, f.Frame)
		case wsapi.TypeEnd:
			if !started() {
				return r, fmt.Errorf("end before start: %s", f.Raw)
			}
			r.End = f.Frame
			return r, nil
		case wsapi.TypeError:
			e := f.Frame
			r.Err = &e
			return r, nil
		default:
			return r, fmt.Errorf("unexpected frame %s", f.Raw)
		}
	}
}

func seqString(seq *int) string {
	if seq == nil {
		return "none"
	}
	return fmt.Sprint(*seq)
}

// Chat sends m and collects its reply.
func (c *Conn) Chat(ctx context.Context, m SendMessage) (Reply, error) {
	if err := c.SendMessage(ctx, m); err != nil {
		return Reply{}, err
	}
	return c.Collect(ctx, m.RequestID)
}

// Resume is a resume frame. AfterSeq is always sent: -1 asks for every
// frame, 0 for those after the first.
type Resume struct {
	Action    string `json:"action"`
	RequestID string `json:"requestId"`
	MessageID string `json:"messageId"`
	AfterSeq  int    `json:"afterSeq"`
}

// Resume asks for the frames of reply messageID after afterSeq on this
// connection; they come back under requestID (CollectResumed reads them).
func (c *Conn) Resume(ctx context.Context, requestID, messageID string, afterSeq int) error {
	return c.Send(ctx, Resume{Action: wsapi.ActionResume, RequestID: requestID, MessageID: messageID, AfterSeq: afterSeq})
}

// Stop asks the server to stop reply messageID; the reply's listeners
// then get its end, stopReason "stopped". A stop that is accepted is not
// answered.
func (c *Conn) Stop(ctx context.Context, requestID, messageID string) error {
	return c.Send(ctx, map[string]string{"action": wsapi.ActionStop, "requestId": requestID, "messageId": messageID})
}

// Ping checks that the socket still answers: the next frame must be the
// pong.
func (c *Conn) Ping(ctx context.Context) error {
	if err := c.SendRaw(ctx, []byte(`{"action":"ping"}`)); err != nil {
		return err
	}
	f, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if f.Type != wsapi.TypePong {
		return fmt.Errorf("ping answered %s", f.Raw)
	}
	return nil
}

// Close says goodbye as a browser tab does.
func (c *Conn) Close() error { return c.WS.Close(websocket.StatusNormalClosure, "") }
