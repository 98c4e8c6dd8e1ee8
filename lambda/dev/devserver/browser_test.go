package devserver

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
// and waits for the streamed reply, driving chromium through chromedp.
func TestChatPageInAHeadlessBrowser(t *testing.T) {
	srv := sharedServer(t)
	page := openChatPage(t, srv)
	user := signInOnPage(t, page, "browser")
	if evalValue[bool](t, page, `!document.getElementById("stop").hidden`) {
		t.Error("the Stop button shows with no reply streaming")
	}

	sendOnPage(t, page, "[[tokens=80]] [[rate=400]] Hello from the browser")
	shown := waitFor[struct{ Text, Model, Meta string }](t, page, "the streamed reply", `(() => {
		const m = document.querySelector("#messages li.assistant[data-state=done]");
		return m && {text: m.querySelector(".text").textContent, model: m.dataset.model || "", meta: m.querySelector(".meta").textContent};
	})()`)
	if !strings.HasPrefix(shown.Model, StandInModelPrefix) || shown.Text == "" || !strings.Contains(shown.Meta, "tokens in") {
		t.Errorf("the page shows %+v", shown)
	}
	if evalValue[bool](t, page, `!document.getElementById("stop").hidden`) {
		t.Error("the Stop button still shows after the reply ended")
	}

	// What the page assembled from the deltas is what was stored.
	if stored := storedReply(t, srv, user); stored.Text != shown.Text {
		t.Errorf("the page shows %q, the store holds %q", shown.Text, stored.Text)
	}

	// The page lists the conversation and reopens it from history.
	waitFor[bool](t, page, "the conversation list", `document.querySelectorAll("#conversations button").length === 1`)
	evalPage(t, page, `(() => {
		document.getElementById("new-chat").click();
		document.querySelector("#conversations button").click();
	})()`)
	reopened := waitFor[string](t, page, "the reopened conversation", `(() => {
		const ms = document.querySelectorAll("#messages li.msg");
		return ms.length === 2 ? ms[1].querySelector(".text").textContent : "";
	})()`)
	if reopened != shown.Text {
		t.Errorf("the reopened conversation shows %q, want %q", reopened, shown.Text)
	}
	usage := waitFor[string](t, page, "the usage line", `(() => { const u = document.getElementById("usage").textContent; return /\d+ tokens in/.test(u) && !u.startsWith("0 ") ? u : ""; })()`)
	t.Logf("usage shown: %s", usage)
}

// openChatPage starts a headless chromium on the dev server's chat page
// and waits until the page has read its configuration. The browser stops
// with the test.
func openChatPage(t *testing.T, srv *Server) context.Context {
	t.Helper()
	bin := chromiumPath()
	if _, err := os.Stat(bin); err != nil {
		// `make test` installs it, so in CI a missing browser is a failure,
		// not a silently skipped test.
		if os.Getenv("CI") != "" {
			t.Fatalf("no browser at %s: `make test` should have installed it (make chromium)", bin)
		}
		t.Skipf("no browser at %s: run `make chromium` (or set BUDDY_CHROMIUM)", bin)
	}
	// Only these flags, not chromedp's defaults: without the
	// background-networking ones Chromium dials out, and a closed network
	// refuses it. The profile's t.TempDir() is removed after the browser
	// stopped: cleanups run last-registered first.
	profile := t.TempDir()
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(),
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Containers often have a tiny /dev/shm, which crashes tabs.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
	)
	page, cancelPage := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelPage()
		cancelAlloc() // waits for the browser to exit
	})

	// Navigate returns once the load event fired (readyState "complete").
	if err := chromedp.Do(page, chromedp.Navigate(srv.PageURL), chromedp.WaitVisible(chromedp.ID("user-name"))); err != nil {
		t.Fatalf("waiting for the page to load: %v", err)
	}
	// The page unhides the notice once it has read the dev config.
	if err := chromedp.Do(page, chromedp.WaitVisible(chromedp.ID("standin"))); err != nil {
		t.Fatalf("waiting for the stand-in notice: %v", err)
	}
	return page
}

// signInOnPage signs a fresh user in through the page's form (a token from
// /dev/token, then the socket) and returns the user name.
func signInOnPage(t *testing.T, page context.Context, prefix string) string {
	t.Helper()
	user := prefix + "-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	evalPage(t, page, `(() => {
		document.getElementById("user-name").value = `+jsString(user)+`;
		document.getElementById("user-form").requestSubmit();
	})()`)
	waitFor[bool](t, page, "the socket to open", `document.getElementById("status").textContent.startsWith("Connected as ")`)
	return user
}

// sendOnPage sends text as the user would, with the Send button.
func sendOnPage(t *testing.T, page context.Context, text string) {
	t.Helper()
	evalPage(t, page, `(() => {
		document.getElementById("message").value = `+jsString(text)+`;
		document.getElementById("send").click();
	})()`)
}

// evalValue evaluates expression in the page and returns its value.
func evalValue[T any](t *testing.T, page context.Context, expression string) T {
	t.Helper()
	v, err := chromedp.Run(page, chromedp.Evaluate[T](expression))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// evalPage evaluates a script in the page for its effect.
func evalPage(t *testing.T, page context.Context, script string) {
	t.Helper()
	if err := chromedp.Do(page, chromedp.Evaluate[chromedp.Void](script)); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls expression in the page until it is truthy and returns that
// value. The poll's own 30s default is off: a loaded machine may need longer,
// and go test's -timeout is the bound.
func waitFor[T any](t *testing.T, page context.Context, what, expression string) T {
	t.Helper()
	v, err := chromedp.Run(page, chromedp.Poll[T](expression, chromedp.WithPollingTimeout(0)))
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return v
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
