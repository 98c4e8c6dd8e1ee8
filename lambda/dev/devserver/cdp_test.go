package devserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// A tiny Chrome DevTools Protocol client: enough to open a page in a
// headless chromium and evaluate JavaScript in it.

// chromium is a headless browser process.
type chromium struct {
	cmd  *exec.Cmd
	done chan struct{}
	cdp  *cdpConn
}

var devtoolsLine = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// startChromium launches bin headless with its own profile in dir and
// connects to its DevTools endpoint, which it announces on stderr.
func startChromium(ctx context.Context, bin, dir string) (*chromium, error) {
	cmd := exec.Command(bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+dir, "--remote-debugging-port=0", "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	b := &chromium{cmd: cmd, done: make(chan struct{})}
	urls := make(chan string, 1)
	var tail []string
	var tailMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if m := devtoolsLine.FindStringSubmatch(line); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
			tailMu.Lock()
			tail = append(tail, line)
			if len(tail) > 20 {
				tail = tail[1:]
			}
			tailMu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { _ = cmd.Wait(); close(b.done) }()
	select {
	case u := <-urls:
		b.cdp, err = dialCDP(ctx, u)
		if err != nil {
			b.stop()
			return nil, err
		}
		return b, nil
	case <-b.done:
		tailMu.Lock()
		defer tailMu.Unlock()
		return nil, fmt.Errorf("chromium exited at start: %q", tail)
	case <-ctx.Done():
		b.stop()
		return nil, fmt.Errorf("chromium did not announce its DevTools endpoint: %w", ctx.Err())
	}
}

func (b *chromium) stop() {
	if b.cdp != nil {
		b.cdp.close()
	}
	_ = b.cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// cdpConn multiplexes calls over the browser's DevTools WebSocket; events
// are ignored.
type cdpConn struct {
	ws      *websocket.Conn
	next    atomic.Int64
	mu      sync.Mutex
	waiting map[int64]chan cdpReply
	readErr error
	done    chan struct{}
}

func dialCDP(ctx context.Context, url string) (*cdpConn, error) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("dial DevTools: %w", err)
	}
	ws.SetReadLimit(64 << 20)
	c := &cdpConn{ws: ws, waiting: map[int64]chan cdpReply{}, done: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

func (c *cdpConn) readLoop() {
	defer close(c.done)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		var msg struct {
			ID int64 `json:"id"`
			cdpReply
		}
		if json.Unmarshal(b, &msg) != nil || msg.ID == 0 {
			continue
		}
		c.mu.Lock()
		ch := c.waiting[msg.ID]
		delete(c.waiting, msg.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- msg.cdpReply
		}
	}
}

// call sends method to the browser (sessionID "") or to an attached page.
func (c *cdpConn) call(ctx context.Context, sessionID, method string, params any, result any) error {
	id := c.next.Add(1)
	ch := make(chan cdpReply, 1)
	c.mu.Lock()
	if c.readErr != nil {
		c.mu.Unlock()
		return c.readErr
	}
	c.waiting[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if sessionID != "" {
		msg["sessionId"] = sessionID
	}
	b, _ := json.Marshal(msg)
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return err
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, r.Error.Message, r.Error.Code)
		}
		if result != nil {
			return json.Unmarshal(r.Result, result)
		}
		return nil
	case <-c.done:
		return fmt.Errorf("%s: DevTools connection closed: %v", method, c.readErr)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (c *cdpConn) close() { _ = c.ws.Close(websocket.StatusNormalClosure, "") }

// page is one tab, attached with a flat session.
type page struct {
	cdp     *cdpConn
	session string
}

func (b *chromium) newPage(ctx context.Context, url string) (*page, error) {
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := b.cdp.call(ctx, "", "Target.createTarget", map[string]any{"url": url}, &target); err != nil {
		return nil, err
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.cdp.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		return nil, err
	}
	return &page{cdp: b.cdp, session: att.SessionID}, nil
}

// eval evaluates expression in the page, awaiting a promise, and decodes
// its JSON-serialisable value into out.
func (p *page) eval(ctx context.Context, expression string, out any) error {
	var r struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception *struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.cdp.call(ctx, p.session, "Runtime.evaluate", map[string]any{
		"expression": expression, "returnByValue": true, "awaitPromise": true,
	}, &r)
	if err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		msg := e.Text
		if e.Exception != nil {
			msg = e.Exception.Description
		}
		return errors.New("page exception: " + msg)
	}
	if out == nil || len(r.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// waitFor evaluates expression until it yields a non-empty string or ctx
// ends, and returns that string.
func (p *page) waitFor(ctx context.Context, what, expression string) (string, error) {
	for {
		var s string
		err := p.eval(ctx, expression, &s)
		if err == nil && s != "" {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
