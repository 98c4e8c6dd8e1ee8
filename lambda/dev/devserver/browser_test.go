package devserver

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// chromiumPath is where Debian's chromium package installs the browser
// (`make chromium`); BUDDY_CHROMIUM points elsewhere.
func chromiumPath() string {
	if p := os.Getenv("BUDDY_CHROMIUM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return "/usr/bin/chromium"
}

// TestChatPageInAHeadlessBrowser loads the page, signs in, sends a message
// and waits for the streamed reply, driving chromium through the DevTools
// protocol.
func TestChatPageInAHeadlessBrowser(t *testing.T) {
	bin := chromiumPath()
	if _, err := os.Stat(bin); err != nil {
		// `make test` installs it, so in CI a missing browser is a failure,
		// not a silently skipped test.
		if os.Getenv("CI") != "" {
			t.Fatalf("no browser at %s: `make test` should have installed it (make chromium)", bin)
		}
		t.Skipf("no browser at %s: run `make chromium` (or set BUDDY_CHROMIUM)", bin)
	}
	srv := sharedServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	b, err := startChromium(ctx, bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.stop()
	p, err := b.newPage(ctx, srv.PageURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.waitFor(ctx, "the page to load", `document.readyState === "complete" && document.getElementById("user-name") ? "yes" : ""`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.waitFor(ctx, "the stand-in notice", `document.getElementById("standin").hidden ? "" : "shown"`); err != nil {
		t.Fatal(err)
	}

	user := "browser-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	if err := p.eval(ctx, `(() => {
		document.getElementById("user-name").value = `+jsString(user)+`;
		document.getElementById("user-form").requestSubmit();
	})()`, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p.waitFor(ctx, "the socket to open", `document.getElementById("status").textContent.startsWith("Connected as ") ? "yes" : ""`); err != nil {
		t.Fatal(err)
	}

	if err := p.eval(ctx, `(() => {
		document.getElementById("message").value = "[[tokens=80]] [[rate=400]] Hello from the browser";
		document.getElementById("send").click();
	})()`, nil); err != nil {
		t.Fatal(err)
	}
	out, err := p.waitFor(ctx, "the streamed reply", `(() => {
		const m = document.querySelector("#messages li.assistant[data-state=done]");
		if (!m) return "";
		return JSON.stringify({text: m.querySelector(".text").textContent, model: m.dataset.model || "", meta: m.querySelector(".meta").textContent});
	})()`)
	if err != nil {
		t.Fatal(err)
	}
	var shown struct{ Text, Model, Meta string }
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(shown.Model, StandInModelPrefix) || shown.Text == "" || !strings.Contains(shown.Meta, "tokens in") {
		t.Errorf("the page shows %+v", shown)
	}

	// What the page assembled from the deltas is what was stored.
	token, err := srv.Token(user)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Conversations []apiConversation `json:"conversations"`
	}
	if st := callAPI(ctx, t, srv, "Bearer "+token, http.MethodGet, "/conversations", nil, &list); st != 200 || len(list.Conversations) != 1 {
		t.Fatalf("GET /conversations: %d %+v", st, list)
	}
	var conv apiConversation
	callAPI(ctx, t, srv, "Bearer "+token, http.MethodGet, "/conversations/"+list.Conversations[0].ID, nil, &conv)
	if len(conv.Messages) != 2 || conv.Messages[1].Text != shown.Text {
		t.Errorf("the page shows %q, the store holds %+v", shown.Text, conv.Messages)
	}

	// The page lists the conversation and reopens it from history.
	if _, err := p.waitFor(ctx, "the conversation list", `document.querySelectorAll("#conversations button").length === 1 ? "yes" : ""`); err != nil {
		t.Fatal(err)
	}
	if err := p.eval(ctx, `(() => {
		document.getElementById("new-chat").click();
		document.querySelector("#conversations button").click();
	})()`, nil); err != nil {
		t.Fatal(err)
	}
	reopened, err := p.waitFor(ctx, "the reopened conversation", `(() => {
		const ms = document.querySelectorAll("#messages li.msg");
		return ms.length === 2 ? ms[1].querySelector(".text").textContent : "";
	})()`)
	if err != nil {
		t.Fatal(err)
	}
	if reopened != shown.Text {
		t.Errorf("the reopened conversation shows %q, want %q", reopened, shown.Text)
	}
	usage, err := p.waitFor(ctx, "the usage line", `(() => { const u = document.getElementById("usage").textContent; return /\d+ tokens in/.test(u) && !u.startsWith("0 ") ? u : ""; })()`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("usage shown: %s", usage)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
