package devserver

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// The chat page's model picker, thinking switch, effort choice, reply
// costs and usage table, in chromium against the dev server: they need
// GET /models, sendMessage's model and thinking, thinking frames, costUsd
// and the v2 /usage body.

// Wire shapes the page reads, for the checks here (the API's v2 fields).
type (
	browserModel struct {
		ID       string `json:"id"`
		Default  bool   `json:"default"`
		Thinking bool   `json:"thinking"`
		Effort   bool   `json:"effort"`
	}
	browserMessage struct {
		ID       string   `json:"id"`
		Role     string   `json:"role"`
		Text     string   `json:"text"`
		Model    string   `json:"model"`
		Status   string   `json:"status"`
		Thinking string   `json:"thinking"`
		CostUSD  *float64 `json:"costUsd"`
	}
	browserConversation struct {
		ID       string           `json:"id"`
		Model    string           `json:"model"`
		Messages []browserMessage `json:"messages"`
	}
)

// shownAnswer is an ended assistant message as the page shows it.
type shownAnswer struct {
	State, Model, Text, Meta, Cost, CostUSD string
	// HasThinking: the reply has a thinking box; ThinkingOpen: it is
	// expanded; ThinkingAbove: it sits right above the answer's text.
	HasThinking, ThinkingOpen, ThinkingAbove bool
	Thinking                                 string
}

// answerJS reads the page's newest assistant message into a shownAnswer,
// or null while it streams.
const answerJS = `(() => {
	const ms = document.querySelectorAll("#messages li.assistant");
	const m = ms[ms.length - 1];
	if (!m || m.dataset.state === "streaming") return null;
	const text = m.querySelector(".text");
	const box = m.querySelector("details.thinking");
	const cost = m.querySelector(".meta .cost");
	return {state: m.dataset.state, model: m.dataset.model || "", text: text.textContent,
		meta: m.querySelector(".meta").textContent, cost: cost ? cost.textContent : "", costUSD: m.dataset.costUsd || "",
		hasThinking: !!box, thinkingOpen: !!box && box.open, thinkingAbove: !!box && box.nextElementSibling === text,
		thinking: box ? box.querySelector(".thinking-text").textContent : ""};
})()`

// listModels is GET /models as user.
func listModels(t *testing.T, srv *Server, user string) []browserModel {
	t.Helper()
	token, err := srv.Token(user)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Models []browserModel `json:"models"`
	}
	// callAPI fails the test on a body that is not JSON.
	if st := callAPI(testCtx(t), t, srv, "Bearer "+token, http.MethodGet, "/models", nil, &out); st != http.StatusOK || len(out.Models) == 0 || !out.Models[0].Default {
		t.Fatalf("GET /models: %d %+v, want the allowed models, the default first", st, out.Models)
	}
	return out.Models
}

// storedConversation is the user's only conversation, with its messages.
func storedConversation(t *testing.T, srv *Server, user string) browserConversation {
	t.Helper()
	conv := onlyConversation[browserConversation](t, srv, user)
	if len(conv.Messages) != 2 {
		t.Fatalf("the conversation holds %+v, want the message and its reply", conv)
	}
	return conv
}

// waitForPicker waits until the page's model picker lists exactly the
// models of GET /models, in its order, and returns what it lists.
func waitForPicker(t *testing.T, page context.Context, models []browserModel) []string {
	t.Helper()
	ids := make([]string, len(models))
	for i, m := range models {
		ids[i] = m.ID
	}
	want, _ := json.Marshal(ids)
	return waitFor[[]string](t, page, "the model picker to list "+string(want), `(() => {
		const ids = [...document.querySelectorAll("#model-select option")].map((o) => o.value);
		return !document.getElementById("options").hidden && JSON.stringify(ids) === `+jsString(string(want))+` ? ids : null;
	})()`)
}

// openPickerPage opens the chat page for a fresh user (named from prefix)
// and waits until its model picker lists GET /models, which it returns.
func openPickerPage(t *testing.T, prefix string) (srv *Server, page context.Context, user string, models []browserModel) {
	t.Helper()
	srv = sharedServer(t)
	page = openChatPage(t, srv)
	user = signInOnPage(t, page, prefix)
	models = listModels(t, srv, user)
	waitForPicker(t, page, models)
	return srv, page, user, models
}

// chooseModel picks a model in the page's picker as the user would.
func chooseModel(t *testing.T, page context.Context, id string) {
	t.Helper()
	evalPage(t, page, `(() => {
		const sel = document.getElementById("model-select");
		sel.value = `+jsString(id)+`;
		sel.dispatchEvent(new Event("change"));
	})()`)
	if got := evalValue[string](t, page, `document.getElementById("model-select").value`); got != id {
		t.Fatalf("the picker shows %q after choosing %q", got, id)
	}
}

// switchThinking turns the thinking switch on with budget (or off when
// budget is 0).
func switchThinking(t *testing.T, page context.Context, budget int) {
	t.Helper()
	evalPage(t, page, `(() => {
		const box = document.getElementById("thinking");
		box.checked = `+strconv.FormatBool(budget > 0)+`;
		box.dispatchEvent(new Event("change"));
		if (`+strconv.Itoa(budget)+` > 0) document.getElementById("thinking-budget").value = "`+strconv.Itoa(budget)+`";
	})()`)
}

// controlsShown reports which of the thinking and effort controls show.
func controlsShown(t *testing.T, page context.Context) (thinking, effort bool) {
	t.Helper()
	v := evalValue[[]bool](t, page, `[!document.getElementById("thinking-field").hidden, !document.getElementById("effort-field").hidden]`)
	return v[0], v[1]
}

func TestChatPageModelPickerSendsTheChosenModel(t *testing.T) {
	srv, page, user, models := openPickerPage(t, "models")
	if len(models) < 2 {
		t.Fatalf("GET /models lists %+v: the picker needs two models to show a choice", models)
	}
	if got := evalValue[string](t, page, `document.getElementById("model-select").value`); got != models[0].ID {
		t.Errorf("the picker starts on %q, want the default %q", got, models[0].ID)
	}
	// Each model shows the controls it takes, and only those.
	for _, m := range models {
		chooseModel(t, page, m.ID)
		if th, ef := controlsShown(t, page); th != m.Thinking || ef != m.Effort {
			t.Errorf("with %s the page shows thinking %v, effort %v; GET /models says %v, %v", m.ID, th, ef, m.Thinking, m.Effort)
		}
	}

	chosen := models[len(models)-1].ID
	chooseModel(t, page, chosen)
	sendOnPage(t, page, "[[tokens=40]] [[rate=400]] Which model answers?")
	shown := waitFor[shownAnswer](t, page, "the reply", answerJS)
	if shown.State != "done" || shown.Text == "" || !strings.Contains(shown.Model, chosen) {
		t.Errorf("the page shows %+v, want a reply by %s", shown, chosen)
	}
	if shown.HasThinking {
		t.Errorf("a reply without thinking requested shows a thinking box: %+v", shown)
	}
	// The reply's cost shows next to it, as end.costUsd gave it.
	if !strings.Contains(shown.Cost, "$") || !strings.Contains(shown.Meta, shown.Cost) {
		t.Errorf("the reply shows no cost: meta %q, cost %q", shown.Meta, shown.Cost)
	}

	conv := storedConversation(t, srv, user)
	if conv.Model != chosen {
		t.Errorf("the stored conversation's model is %q, want the chosen %q", conv.Model, chosen)
	}
	reply := conv.Messages[1]
	if reply.Text != shown.Text || !strings.Contains(reply.Model, chosen) {
		t.Errorf("the store holds %+v, the page shows %+v", reply, shown)
	}
	if shownCost, err := strconv.ParseFloat(shown.CostUSD, 64); err != nil || reply.CostUSD == nil || *reply.CostUSD != shownCost || shownCost <= 0 {
		t.Errorf("the page shows cost %q, the store holds %v", shown.CostUSD, reply.CostUSD)
	}

	// Reopened from history, the conversation preselects its model and
	// shows the stored cost.
	chooseModel(t, page, models[0].ID)
	evalPage(t, page, `(() => {
		document.getElementById("new-chat").click();
		document.querySelector("#conversations button").click();
	})()`)
	reopened := waitFor[shownAnswer](t, page, "the reopened conversation", `document.querySelectorAll("#messages li.msg").length === 2 && `+answerJS)
	if got := evalValue[string](t, page, `document.getElementById("model-select").value`); got != chosen {
		t.Errorf("the reopened conversation preselects %q, want %q", got, chosen)
	}
	if reopened.Text != shown.Text || reopened.CostUSD != shown.CostUSD || reopened.Cost != shown.Cost {
		t.Errorf("reopened, the reply shows %+v; live it showed %+v", reopened, shown)
	}

	// The usage view: a row per day and model with the cache write split and
	// savedUsd, and today's tokens against the limit.
	usage := waitFor[struct {
		Today string
		Rows  [][]string
	}](t, page, "the usage table", `(() => {
		const today = document.getElementById("usage-today");
		const rows = [...document.querySelectorAll("#usage-days tbody tr")].map((tr) => [...tr.children].map((td) => td.textContent));
		return !today.hidden && rows.length > 0 ? {today: today.textContent, rows} : null;
	})()`)
	if !strings.HasPrefix(usage.Today, "Today: ") || !strings.Contains(usage.Today, "tokens used") {
		t.Errorf("today's usage reads %q", usage.Today)
	}
	if len(usage.Rows) != 1 || len(usage.Rows[0]) != 9 || !strings.Contains(chosen, usage.Rows[0][1]) || usage.Rows[0][7] == "–" || usage.Rows[0][8] == "–" {
		t.Errorf("the usage table holds %q, want one row of 9 cells for %s with cost and saved", usage.Rows, chosen)
	}

	// An effort goes with a model that takes one, and the reply comes.
	for _, m := range models {
		if !m.Effort {
			continue
		}
		chooseModel(t, page, m.ID)
		evalPage(t, page, `(() => {
			document.getElementById("effort").value = "low";
			document.getElementById("new-chat").click();
		})()`)
		sendOnPage(t, page, "[[tokens=20]] [[rate=400]] With low effort")
		if shown := waitFor[shownAnswer](t, page, "the reply with effort", answerJS); shown.State != "done" || !strings.Contains(shown.Model, m.ID) {
			t.Errorf("with effort low, %s's reply shows %+v", m.ID, shown)
		}
		break
	}
}

func TestChatPageShowsThinkingCollapsedAboveTheAnswer(t *testing.T) {
	srv, page, user, models := openPickerPage(t, "thinking")
	var thinker string
	for _, m := range models {
		if m.Thinking {
			thinker = m.ID
			break
		}
	}
	if thinker == "" {
		t.Fatalf("GET /models lists no model with thinking: %+v", models)
	}
	chooseModel(t, page, thinker)
	if th, _ := controlsShown(t, page); !th {
		t.Fatalf("the thinking switch does not show for %s", thinker)
	}

	// A budget below 1024 stops Send (the browser's own form check); nothing
	// is sent.
	switchThinking(t, page, 1000)
	sendOnPage(t, page, "Too little budget")
	if !evalValue[bool](t, page, `document.getElementById("thinking-budget").validity.rangeUnderflow`) {
		t.Error("the budget input takes 1000 tokens")
	}
	if n := evalValue[int](t, page, `document.querySelectorAll("#messages li.msg").length`); n != 0 {
		t.Fatalf("the page sent a message with a thinking budget of 1000 (%d messages shown)", n)
	}

	// Thinking streams into a collapsed box above the answer before the
	// answer starts.
	switchThinking(t, page, 1024)
	sendOnPage(t, page, "[[thinking=60]] [[tokens=60]] [[rate=40]] Think first")
	waitFor[bool](t, page, "the thinking to stream", `(() => {
		const m = document.querySelector("#messages li.assistant[data-state=streaming]");
		const box = m && m.querySelector("details.thinking");
		return !!box && !box.open && box.textContent.length > "Thinking".length;
	})()`)
	shown := waitFor[shownAnswer](t, page, "the reply", answerJS)
	if shown.State != "done" || shown.Text == "" || !shown.HasThinking || shown.ThinkingOpen || !shown.ThinkingAbove || shown.Thinking == "" {
		t.Errorf("the page shows %+v, want the thinking collapsed right above the answer", shown)
	}
	if strings.Contains(shown.Text, shown.Thinking) {
		t.Errorf("the answer %q holds the thinking %q", shown.Text, shown.Thinking)
	}
	reply := storedConversation(t, srv, user).Messages[1]
	if reply.Text != shown.Text || reply.Thinking != shown.Thinking {
		t.Errorf("the page shows thinking %q and text %q, the store holds %+v", shown.Thinking, shown.Text, reply)
	}

	// From history the stored thinking shows collapsed too.
	evalPage(t, page, `(() => {
		document.getElementById("new-chat").click();
		document.querySelector("#conversations button").click();
	})()`)
	reopened := waitFor[shownAnswer](t, page, "the reopened conversation", `document.querySelectorAll("#messages li.msg").length === 2 && `+answerJS)
	if reopened.Thinking != shown.Thinking || reopened.ThinkingOpen || !reopened.ThinkingAbove || reopened.Text != shown.Text {
		t.Errorf("reopened, the reply shows %+v; live it showed %+v", reopened, shown)
	}
}

// TestChatPageResumesThinkingAfterTheSocketDrops cuts the socket while the
// thinking streams: the resume counts seq over thinking and text frames, so
// both show once and without a gap.
func TestChatPageResumesThinkingAfterTheSocketDrops(t *testing.T) {
	srv, page, user, models := openPickerPage(t, "resume-thinking")
	for _, m := range models {
		if m.Thinking {
			chooseModel(t, page, m.ID)
			break
		}
	}
	switchThinking(t, page, 1024)
	sendOnPage(t, page, "[[thinking=150]] [[tokens=150]] [[rate=60]] Think, then answer")
	before := waitFor[string](t, page, "the first thinking", `(() => {
		const m = document.querySelector("#messages li.assistant[data-state=streaming]");
		const t = m && m.querySelector(".thinking-text");
		return t && t.textContent.length > 20 && m.querySelector(".text").textContent === "" ? t.textContent : "";
	})()`)
	if n := dropBrowserSockets(srv); n != 1 {
		t.Fatalf("dropped %d browser sockets, want 1", n)
	}
	shown := waitFor[shownAnswer](t, page, "the reply to end", answerJS)
	if shown.State != "done" || !strings.HasPrefix(shown.Thinking, before) || len(shown.Thinking) <= len(before) || shown.Text == "" {
		t.Fatalf("the page showed thinking %q before the drop and %+v at the end", before, shown)
	}
	reply := storedConversation(t, srv, user).Messages[1]
	if reply.Text != shown.Text || reply.Thinking != shown.Thinking {
		t.Errorf("the page shows thinking %q and text %q, the store holds %+v", shown.Thinking, shown.Text, reply)
	}
}
