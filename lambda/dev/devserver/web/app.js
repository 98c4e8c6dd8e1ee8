// Buddy chat page: plain JavaScript, no build step. It speaks the same
// protocols to the local dev server and to a deployed stack: the WebSocket
// API for chatting and the HTTP API for history, prompts
// and usage.
"use strict";

// API Gateway closes the socket (1009) on a frame over 32 KB, and a browser
// sends each message as one frame.
const MAX_FRAME_BYTES = 32 * 1024;

// How long to wait between attempts to reconnect after a socket dropped
// mid-reply. The server keeps an orphaned reply running for two minutes
// (ORPHAN_REPLY_GRACE_SECONDS), so these attempts end well within it.
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 8000];

// A thinking budget is at least 1024 tokens and below the max tokens.
// GET /models does not say the deployment's MAX_TOKENS, so the page checks
// the upper bound only when a model entry or the dev config gives a
// maxTokens; otherwise the server's bad_request names it.
const MIN_THINKING_BUDGET = 1024;

// A message carries at most 20 attachments. The other limits (types,
// sizes, pages) are the server's to check: its refusal is what the page
// shows.
const MAX_ATTACHMENTS = 20;

const $ = (id) => document.getElementById(id);

const state = {
  mode: "dev",        // "dev": tokens from /dev/token; "remote": pasted token
  sub: "",
  token: "",
  wsUrl: "",
  httpUrl: "",
  devConfig: null,
  ws: null,
  opening: null,      // promise of the socket being opened
  conversationId: "",
  prompts: [],
  models: [],         // GET /models, the default first; empty: the server chooses
  replies: new Map(), // requestId (of its sendMessage or a resume) -> reply view
  live: new Set(),    // reply views still streaming, oldest first
  attachments: [],    // files for the next message, in the order attached
};

// ---------- settings ----------

function loadSettings() {
  try {
    const s = JSON.parse(localStorage.getItem("buddy.settings") || "{}");
    Object.assign(state, {
      mode: s.mode || "dev", sub: s.sub || "", wsUrl: s.wsUrl || "", httpUrl: s.httpUrl || "",
    });
  } catch (_) { /* a corrupt entry is the same as none */ }
  // Tokens live only as long as the tab.
  state.token = sessionStorage.getItem("buddy.token") || "";
}

function saveSettings() {
  localStorage.setItem("buddy.settings", JSON.stringify({
    mode: state.mode, sub: state.sub, wsUrl: state.wsUrl, httpUrl: state.httpUrl,
  }));
  sessionStorage.setItem("buddy.token", state.token);
}

// ---------- small helpers ----------

function newId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2);
}

function setStatus(text, open) {
  const el = $("status");
  el.textContent = text;
  el.dataset.state = open ? "open" : "closed";
}

function showError(text) {
  const el = $("error");
  el.textContent = text || "";
  el.hidden = !text;
}

function fmtInt(n) { return Number(n || 0).toLocaleString(); }

// fmtUsd shows an estimate in dollars; replies cost fractions of a cent.
function fmtUsd(n) {
  n = Number(n);
  if (n === 0) return "$0";
  if (n < 0.0001) return "< $0.0001";
  return "$" + n.toFixed(n >= 1 ? 2 : 4);
}

function isNum(v) { return typeof v === "number" && Number.isFinite(v); }

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

function subOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part)).sub || "";
  } catch (_) {
    return "";
  }
}

// ---------- HTTP API ----------

async function fetchToken(sub) {
  const res = await fetch(state.httpUrl + "/dev/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sub }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((body.error && body.error.message) || body.message || "could not get a token");
  return body.token;
}

async function api(method, path, body, retried) {
  if (!state.token) throw new Error("sign in first");
  const init = { method, headers: { Authorization: "Bearer " + state.token } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(state.httpUrl + path, init);
  if (res.status === 401 && state.mode === "dev" && state.sub && !retried) {
    // Dev tokens expire and the signing key may be new: get a fresh one.
    state.token = await fetchToken(state.sub);
    saveSettings();
    return api(method, path, body, true);
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    throw new Error((data.error && data.error.message) || data.message || res.status + " " + res.statusText);
  }
  return data;
}

// ---------- WebSocket ----------

function connect(retried) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) return Promise.resolve();
  if (state.opening) return state.opening;
  state.opening = new Promise((resolve, reject) => {
    const url = state.wsUrl + (state.wsUrl.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(state.token);
    const ws = new WebSocket(url);
    let opened = false;
    setStatus("Connecting…", false);
    ws.onopen = () => {
      opened = true;
      state.ws = ws;
      state.opening = null;
      setStatus("Connected as " + (state.sub || subOf(state.token) || "?"), true);
      resolve();
    };
    ws.onmessage = (ev) => {
      let f;
      try { f = JSON.parse(ev.data); } catch (_) { return; }
      onFrame(f);
    };
    ws.onclose = async (ev) => {
      if (state.ws === ws) state.ws = null;
      if (opened) {
        if (ws.bye) {
          for (const view of [...state.live]) failReply(view, "connection closed (" + ev.code + ")");
          return;
        }
        resumeReplies(ev.code);
        return;
      }
      state.opening = null;
      // A refused upgrade shows up as a close before open: most often an
      // expired token, which dev mode can replace once.
      if (state.mode === "dev" && state.sub && !retried) {
        try {
          state.token = await fetchToken(state.sub);
          saveSettings();
          await connect(true);
          resolve();
          return;
        } catch (e) { /* fall through to the failure */ }
      }
      setStatus("Not connected", false);
      reject(new Error("could not connect to " + state.wsUrl));
    };
  });
  return state.opening;
}

function disconnect() {
  if (state.ws) {
    state.ws.bye = true; // closed on purpose: nothing to resume
    state.ws.close(1000, "bye");
  }
  state.ws = null;
  state.opening = null;
}

// resumeReplies runs when the socket dropped on its own (network, server
// restart, idle timeout). Replies keep running on the server, so it
// reconnects (connect gets a fresh dev token if the old one is refused) and
// asks for each streaming reply's frames after the last seq shown, then its
// live tail: the reply appears once, without a gap. A reply whose start
// never arrived has no messageId to ask for; reopening its conversation
// shows what was stored.
async function resumeReplies(code) {
  for (const view of [...state.live]) {
    if (!view.messageId) failReply(view, "connection closed (" + code + ") before the reply started");
  }
  if (state.live.size === 0) {
    setStatus("Disconnected (" + code + "); sending reconnects", false);
    return;
  }
  setStatus("Connection lost (" + code + "); resuming…", false);
  for (const view of state.live) view.meta.textContent = "Connection lost; resuming…";
  for (let attempt = 0; ; attempt++) {
    try {
      await connect();
      break;
    } catch (e) {
      if (attempt >= RECONNECT_DELAYS_MS.length) {
        for (const view of [...state.live]) failReply(view, "could not reconnect: " + e.message);
        return;
      }
      await sleep(RECONNECT_DELAYS_MS[attempt]);
    }
  }
  // Should this socket drop too, its own close resumes again from there.
  if (!state.ws) return;
  for (const view of state.live) {
    const requestId = newId();
    state.replies.set(requestId, view); // the resumed frames carry this id
    view.meta.textContent = "";
    state.ws.send(JSON.stringify({ action: "resume", requestId, messageId: view.messageId, afterSeq: view.seq }));
    if (view.stopWanted) sendStop(view); // clicked while the socket was down
  }
}

// sendStop asks the server to stop a reply; its stream then ends with `end`
// (stopReason "stopped") like any other, which is what finishes the view.
function sendStop(view) {
  view.stopWanted = true;
  if (!view.messageId || !state.ws || state.ws.readyState !== WebSocket.OPEN) return; // sent on start or resume
  state.ws.send(JSON.stringify({ action: "stop", requestId: newId(), messageId: view.messageId }));
  view.meta.textContent = "Stopping…";
}

// updateStop shows the Stop button while a reply streams.
function updateStop() {
  $("stop").hidden = state.live.size === 0;
}

// forget drops a finished reply from every map that leads to it.
function forget(view) {
  state.live.delete(view);
  for (const [id, v] of state.replies) if (v === view) state.replies.delete(id);
  updateStop();
}

function onFrame(f) {
  const view = f.requestId ? state.replies.get(f.requestId) : null;
  if (view && f.messageId && !view.messageId) {
    view.messageId = f.messageId;
    view.li.dataset.messageId = f.messageId;
  }
  switch (f.type) {
    case "start":
      if (!view) return;
      view.conversationId = f.conversationId;
      if (!state.conversationId && view.sentIn === "") state.conversationId = f.conversationId;
      showModel(view, f.model);
      if (view.stopWanted) sendStop(view); // Stop was clicked before the id was known
      return;
    case "thinking":
    case "delta":
      if (!view) return;
      // thinking and delta frames share one seq counter and are applied
      // strictly in seq order: an early one waits, one already shown (sent
      // again by a resume) is dropped.
      if (f.seq <= view.seq) return;
      view.pending.set(f.seq, f);
      while (view.pending.has(view.seq + 1)) {
        view.seq++;
        const p = view.pending.get(view.seq);
        view.pending.delete(view.seq);
        (p.type === "thinking" ? thinkingOf(view) : view.text).textContent += p.text || "";
      }
      scrollDown();
      return;
    case "end": {
      if (!view) return;
      // start named the model asked for; end names the one that answered
      // (the stand-in says so there).
      if (f.model) showModel(view, f.model);
      view.li.dataset.state = "done";
      view.li.dataset.stopReason = f.stopReason || "";
      view.li.removeAttribute("aria-busy");
      const u = f.usage || {};
      let meta = fmtInt(u.inputTokens) + " tokens in · " + fmtInt(u.outputTokens) + " out";
      if (f.stopReason === "stopped") meta += " · stopped";
      else if (f.stopReason && f.stopReason !== "end_turn") meta += " · stop reason: " + f.stopReason;
      view.meta.textContent = meta;
      showCost(view, f.costUsd);
      forget(view);
      refreshConversations();
      refreshUsage();
      return;
    }
    case "error":
      if (view) {
        failReply(view, f.message || f.code);
      } else {
        showError(f.message || f.code);
      }
      if (f.code === "unauthorized") disconnect();
      return;
    case "pong":
      return;
    default:
      // API Gateway's own answers ("Internal server error", timeouts)
      // carry only a message.
      if (f.message) showError(f.message);
  }
}

function showModel(view, model) {
  view.model = model || "";
  view.who.textContent = "Buddy · " + view.model;
  view.li.dataset.model = view.model;
}

// showCost adds a reply's estimated cost to its meta line; an absent
// costUsd (an older backend, an unpriced model) shows nothing.
function showCost(view, costUsd) {
  if (!isNum(costUsd)) return;
  const span = document.createElement("span");
  span.className = "cost";
  span.title = "Estimated from list prices";
  span.textContent = " · ≈ " + fmtUsd(costUsd);
  view.meta.append(span);
  view.li.dataset.costUsd = String(costUsd);
}

// thinkingOf returns the element a reply's thinking goes into, a collapsed
// <details> above the answer made when the first thinking arrives.
function thinkingOf(view) {
  if (!view.thinking) {
    const box = document.createElement("details");
    box.className = "thinking";
    const summary = document.createElement("summary");
    summary.textContent = "Thinking";
    const body = document.createElement("p");
    body.className = "thinking-text";
    box.append(summary, body);
    view.text.before(box);
    view.thinking = body;
  }
  return view.thinking;
}

function failReply(view, message) {
  view.li.dataset.state = "error";
  view.li.removeAttribute("aria-busy");
  view.meta.textContent = "Error: " + message;
  forget(view);
}

// ---------- rendering ----------

function scrollDown() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

function addMessage(role, text, meta) {
  const li = document.createElement("li");
  li.className = "msg " + role;
  const who = document.createElement("p");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Buddy";
  const body = document.createElement("p");
  body.className = "text";
  body.textContent = text;
  const small = document.createElement("small");
  small.className = "meta";
  small.textContent = meta || "";
  li.append(who, body, small);
  $("messages").append(li);
  scrollDown();
  return { li, who, text: body, meta: small };
}

function renderConversation(conv) {
  if (thumbObserver) thumbObserver.disconnect(); // the thumbnails not yet seen go
  $("messages").replaceChildren();
  $("chat-title").textContent = conv ? conv.title || "Untitled" : "New conversation";
  if (!conv) return;
  for (const m of conv.messages || []) {
    let meta = "";
    if (m.role === "assistant") {
      const u = m.usage || {};
      meta = (m.model ? m.model + " · " : "") + fmtInt(u.inputTokens) + " tokens in · " + fmtInt(u.outputTokens) + " out";
      if (m.status && m.status !== "complete") meta += " · " + m.status;
      else if (m.incomplete) meta += " · incomplete";
    }
    const v = addMessage(m.role, m.text, meta);
    v.li.dataset.state = "done";
    if (m.attachments && m.attachments.length) showAttachments(v, m.attachments);
    if (m.thinking) thinkingOf(v).textContent = m.thinking;
    showCost(v, m.costUsd);
    if (m.model) {
      v.who.textContent = "Buddy · " + m.model;
      v.li.dataset.model = m.model;
    }
  }
}

async function refreshConversations() {
  if (!state.token) return;
  try {
    const data = await api("GET", "/conversations");
    const list = $("conversations");
    list.replaceChildren();
    for (const c of data.conversations || []) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.id = c.id;
      if (c.id === state.conversationId) {
        b.setAttribute("aria-current", "true");
        $("chat-title").textContent = c.title || "Untitled";
      }
      const title = document.createElement("span");
      title.textContent = c.title || "Untitled";
      const when = document.createElement("small");
      when.textContent = new Date(c.updatedAt).toLocaleString();
      b.append(title, when);
      b.addEventListener("click", () => openConversation(c.id));
      li.append(b);
      list.append(li);
    }
    $("no-conversations").hidden = list.children.length > 0;
  } catch (e) {
    showError("Conversations: " + e.message);
  }
}

async function openConversation(id) {
  try {
    const conv = await api("GET", "/conversations/" + encodeURIComponent(id));
    state.conversationId = conv.id;
    renderConversation(conv);
    selectModel(conv.model);
    if (conv.promptId && state.prompts.some((p) => p.id === conv.promptId)) {
      $("prompt-select").value = conv.promptId;
      $("prompt-delete").disabled = false;
    }
    for (const b of $("conversations").querySelectorAll("button")) {
      b.setAttribute("aria-current", b.dataset.id === id ? "true" : "false");
    }
    showError("");
    $("message").focus();
  } catch (e) {
    showError("Could not open the conversation: " + e.message);
  }
}

async function refreshPrompts(selectId) {
  if (!state.token) return;
  try {
    const data = await api("GET", "/prompts");
    state.prompts = data.prompts || [];
    const sel = $("prompt-select");
    const keep = selectId !== undefined ? selectId : sel.value;
    sel.replaceChildren(new Option("None", ""));
    for (const p of state.prompts) sel.append(new Option(p.name, p.id));
    sel.value = state.prompts.some((p) => p.id === keep) ? keep : "";
    $("prompt-delete").disabled = !sel.value;
  } catch (e) {
    showError("Prompts: " + e.message);
  }
}

async function refreshUsage() {
  if (!state.token) return;
  try {
    const u = await api("GET", "/usage");
    const t = u.totals || {};
    let text = fmtInt(t.inputTokens) + " tokens in · " + fmtInt(t.outputTokens) + " out";
    const cached = (t.cacheReadInputTokens || 0) + (t.cacheCreationInputTokens || 0);
    if (cached) text += " · " + fmtInt(cached) + " cache";
    text += isNum(t.costUsd) ? " · ≈ " + fmtUsd(t.costUsd) : " · cost not priced for this model";
    if (isNum(t.savedUsd) && t.savedUsd > 0) text += " · caching saved ≈ " + fmtUsd(t.savedUsd);
    $("usage").textContent = text;
    renderToday(u.today);
    renderUsageDays(u.days || [], t);
  } catch (e) {
    $("usage").textContent = "unavailable: " + e.message;
  }
}

// renderToday shows today's tokens against the daily limit; `reserved` is
// held by replies still running.
function renderToday(today) {
  const el = $("usage-today");
  el.hidden = !today;
  if (!today) return;
  let text = "Today: " + fmtInt(today.used) + " tokens used";
  if (today.reserved) text += " · " + fmtInt(today.reserved) + " reserved";
  text += today.limit ? " of " + fmtInt(today.limit) : " · no daily limit";
  el.textContent = text;
}

// renderUsageDays fills the per-day table: one row per day and model,
// newest first, the cache writes split by lifetime, then the totals.
function renderUsageDays(days, totals) {
  const row = (day, model, r) => {
    const tr = document.createElement("tr");
    tr.append(...[day, shortModel(model),
      fmtInt(r.inputTokens), fmtInt(r.outputTokens), fmtInt(r.cacheReadInputTokens),
      fmtInt(r.cacheWrite5mInputTokens), fmtInt(r.cacheWrite1hInputTokens),
      isNum(r.costUsd) ? fmtUsd(r.costUsd) : "–", isNum(r.savedUsd) ? fmtUsd(r.savedUsd) : "–",
    ].map((v) => {
      const td = document.createElement("td");
      td.textContent = v;
      return td;
    }));
    if (model) tr.children[1].title = model;
    return tr;
  };
  const table = $("usage-days");
  table.tBodies[0].replaceChildren(...[...days].reverse().map((r) => row(r.day, r.model, r)));
  if (table.tFoot) table.tFoot.remove();
  if (days.length) table.createTFoot().append(row("Total", "", totals));
  $("usage-details").hidden = days.length === 0;
}

// shortModel turns "claude-opus-4-5-20251101" into "opus-4-5".
function shortModel(id) {
  const m = /claude-([a-z]+-\d+(?:-\d+)?)(?:-\d{8})?/.exec(id || "");
  return m ? m[1] : id || "";
}

// ---------- models ----------

async function refreshModels() {
  if (!state.token) return;
  let models = [];
  try {
    const data = await api("GET", "/models");
    models = (data && Array.isArray(data.models) ? data.models : []).filter((m) => m && m.id);
  } catch (_) {
    // A backend without GET /models: the server picks the model.
  }
  state.models = models;
  const sel = $("model-select");
  const keep = sel.value;
  sel.replaceChildren(...models.map((m) => new Option(m.id + (m.default ? " (default)" : ""), m.id)));
  if (models.some((m) => m.id === keep)) sel.value = keep;
  $("options").hidden = models.length === 0;
  updateModelOptions();
}

function chosenModel() {
  return state.models.find((m) => m.id === $("model-select").value) || null;
}

// maxTokensOf is the max tokens of a reply by m, 0 when unknown.
function maxTokensOf(m) {
  return Number((m && m.maxTokens) || (state.devConfig && state.devConfig.maxTokens) || 0);
}

// updateModelOptions shows the thinking and effort controls only for a
// model that takes them, and the model's price.
function updateModelOptions() {
  const m = chosenModel();
  const thinking = !!(m && m.thinking);
  $("thinking-field").hidden = !thinking;
  // A disabled input is not validated: a hidden one must never block Send.
  const budget = $("thinking-budget");
  budget.disabled = !(thinking && $("thinking").checked);
  if (maxTokensOf(m) > 0) budget.max = String(maxTokensOf(m) - 1);
  else budget.removeAttribute("max");
  $("effort-field").hidden = !(m && m.effort);
  const p = m && m.price;
  const price = $("model-price");
  price.textContent = p ? "$" + p.inputPerMTok + " in · $" + p.outputPerMTok + " out per million tokens" : "";
  price.title = p ? "Cache: read $" + p.cacheReadPerMTok + ", write $" + p.cacheWrite5mPerMTok +
    " (5 min) or $" + p.cacheWrite1hPerMTok + " (1 hour) per million tokens" : "";
}

// selectModel picks the listed model a stored id names; an id may carry a
// prefix (the stand-in's "standin/"). An id no longer listed changes nothing.
function selectModel(id) {
  if (!id) return;
  const m = state.models.find((x) => x.id === id) || state.models.find((x) => id.includes(x.id));
  if (!m) return;
  $("model-select").value = m.id;
  updateModelOptions();
}

// modelOptions is what the chosen model and controls add to a sendMessage;
// it throws when the thinking budget is out of range.
function modelOptions() {
  const m = chosenModel();
  if (!m) return {};
  const out = { model: m.id };
  if (m.thinking && $("thinking").checked) {
    // The input's min (and max, when known) stop Send with the browser's
    // own message first; this covers a value typed past them by script.
    const n = Number($("thinking-budget").value);
    const max = maxTokensOf(m) > 0 ? maxTokensOf(m) - 1 : Infinity;
    if (!Number.isInteger(n) || n < MIN_THINKING_BUDGET || n > max) {
      throw new Error("The thinking budget must be a whole number of tokens, at least " + MIN_THINKING_BUDGET +
        (max < Infinity ? " and at most " + max : " and below the max tokens") + ".");
    }
    out.thinking = { budgetTokens: n };
  }
  if (m.effort && $("effort").value) out.effort = $("effort").value;
  return out;
}

async function afterSignIn() {
  saveSettings();
  showError("");
  clearTray(false); // another user's uploads, if any: they expire
  state.conversationId = "";
  renderConversation(null);
  try {
    await connect();
  } catch (e) {
    showError(e.message);
  }
  await Promise.all([refreshConversations(), refreshPrompts(), refreshUsage(), refreshModels()]);
}

// ---------- attachments ----------

// A file attached to the next message is declared (POST /uploads), posted
// straight to the bucket with the presigned POST the declaration returned
// (with its progress), then checked (POST /uploads/{id}/complete). Its
// status: declaring, uploading, checking, then ready or failed (with the
// reason in words). Only ready ones are sent, by id; one removed before it
// was sent is deleted (DELETE /uploads/{id}). Unsent uploads the page
// forgets (a reload) expire on the server after a day.

function isImage(contentType) { return /^image\//.test(contentType || ""); }

function fmtBytes(n) {
  n = Number(n || 0);
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return Math.round(n / 1024) + " KB";
  return (n / (1024 * 1024)).toFixed(1) + " MB";
}

// attachmentFacts is what a checked attachment is: its size in pixels or
// pages, and in bytes.
function attachmentFacts(att) {
  const parts = [];
  if (att.width && att.height) parts.push(att.width + "×" + att.height);
  if (att.pages) parts.push(att.pages === 1 ? "1 page" : fmtInt(att.pages) + " pages");
  if (att.size) parts.push(fmtBytes(att.size));
  return parts.join(" · ");
}

// typeBadge is the short name shown until (or instead of) a thumbnail:
// the name's extension, else the type's.
function typeBadge(contentType, name) {
  const ext = /\.([a-z0-9]{1,4})$/i.exec(name || "");
  if (ext) return ext[1].toUpperCase();
  const sub = /^[a-z]+\/(?:x-)?([a-z0-9]{1,4})/i.exec(contentType || "");
  return sub ? sub[1].toUpperCase() : "FILE";
}

// attachmentView is one attachment as the tray and the history show it:
// an image's thumbnail (once setThumb has its URL) with its name under it,
// or a chip with a PDF's name and page count.
function attachmentView(att) {
  const li = document.createElement("li");
  li.className = "att " + (isImage(att.contentType) ? "att-image" : "att-doc");
  if (att.id) li.dataset.uploadId = att.id;
  li.dataset.contentType = att.contentType || "";
  const badge = document.createElement("span");
  badge.className = "att-preview att-badge";
  badge.setAttribute("aria-hidden", "true");
  badge.textContent = typeBadge(att.contentType, att.name);
  const label = document.createElement("span");
  label.className = "att-label";
  const name = document.createElement("span");
  name.className = "att-name";
  name.textContent = att.name;
  name.title = att.name;
  const info = document.createElement("small");
  info.className = "att-info";
  info.textContent = attachmentFacts(att);
  label.append(name, info);
  li.append(badge, label);
  return { li, badge, img: null, name, info, tries: 0 };
}

// setThumb shows the image at url in place of the view's badge; the file
// name is its alt text.
function setThumb(v, att, url) {
  if (!v.img) {
    const img = document.createElement("img");
    img.className = "att-preview thumb";
    img.alt = att.name;
    img.decoding = "async";
    // A URL that expired (they last minutes) is asked for again, once or
    // twice; then the badge comes back.
    img.addEventListener("error", () => {
      if (v.tries < 2) loadThumb(v, att);
      else thumbUnavailable(v, "the image could not be loaded");
    });
    v.badge.replaceWith(img);
    v.img = img;
  }
  v.img.src = url;
}

// loadThumb asks for a fresh URL of the upload's bytes (GET /uploads/{id})
// and shows it.
async function loadThumb(v, att) {
  v.tries++;
  try {
    const data = await api("GET", "/uploads/" + encodeURIComponent(att.id));
    const up = (data && data.upload) || {};
    if (!up.url) throw new Error("the upload is " + (up.status || "not ready"));
    setThumb(v, att, up.url);
  } catch (e) {
    thumbUnavailable(v, e.message);
  }
}

function thumbUnavailable(v, reason) {
  if (v.img) {
    v.img.replaceWith(v.badge);
    v.img = null;
  }
  v.li.dataset.state = "unavailable";
  v.info.textContent = "no preview: " + reason;
}

// Thumbnails in the history are fetched when they scroll into view.
let thumbObserver = null;
const unseenThumbs = new WeakMap(); // li -> [view, attachment]

function loadWhenShown(v, att) {
  if (!("IntersectionObserver" in window)) {
    loadThumb(v, att);
    return;
  }
  if (!thumbObserver) {
    // The message list scrolls: "shown" is near its visible part (an
    // implicit root's margin would not reach past the list's clip).
    thumbObserver = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        thumbObserver.unobserve(e.target);
        const pair = unseenThumbs.get(e.target);
        unseenThumbs.delete(e.target);
        if (pair) loadThumb(pair[0], pair[1]);
      }
    }, { root: $("messages"), rootMargin: "300px 0px" });
  }
  unseenThumbs.set(v.li, [v, att]);
  thumbObserver.observe(v.li);
}

// showAttachments lists a user message's attachments above its text. With
// a url (the ones just sent) a thumbnail shows at once; otherwise it is
// fetched when seen.
function showAttachments(view, atts) {
  const ul = document.createElement("ul");
  ul.className = "atts";
  ul.setAttribute("aria-label", atts.length === 1 ? "1 attachment" : atts.length + " attachments");
  for (const att of atts) {
    const v = attachmentView(att);
    ul.append(v.li);
    if (!isImage(att.contentType)) continue;
    if (att.url) setThumb(v, att, att.url);
    else loadWhenShown(v, att);
  }
  view.text.before(ul);
}

// attachFiles attaches each file to the next message, in order.
function attachFiles(files) {
  if (!state.token) {
    showError("Sign in first.");
    $("user-name").focus();
    return;
  }
  for (const file of files) attachFile(file);
}

async function attachFile(file) {
  const a = {
    file, name: file.name || "pasted." + typeBadge(file.type, "").toLowerCase(),
    contentType: file.type, size: file.size, status: "", upload: null, xhr: null, removed: false,
  };
  const counted = state.attachments.filter((x) => x.status !== "failed").length;
  a.view = trayView(a);
  state.attachments.push(a);
  $("attachments").append(a.view.li);
  if (counted >= MAX_ATTACHMENTS) {
    failAttachment(a, "a message carries at most " + MAX_ATTACHMENTS + " attachments");
    return;
  }
  setAttachmentState(a, "declaring");
  try {
    const made = await api("POST", "/uploads", { name: a.name, contentType: a.contentType, size: a.size });
    a.upload = made.upload;
    a.view.li.dataset.uploadId = a.upload.id;
    if (a.removed) {
      deleteUpload(a.upload.id); // removed while it was being declared
      return;
    }
    setAttachmentState(a, "uploading");
    await postFile(a, made.post);
    if (a.removed) return;
    setAttachmentState(a, "checking");
    const done = await api("POST", "/uploads/" + encodeURIComponent(a.upload.id) + "/complete");
    if (a.removed) return;
    a.upload = done.upload;
    setAttachmentState(a, "ready");
  } catch (e) {
    if (!a.removed) failAttachment(a, e.message);
  }
}

// postFile sends the file to the bucket as a browser form: every field of
// the presigned POST, then the file as "file" (S3 takes nothing after it,
// and the emulator refuses any field the policy does not cover).
function postFile(a, post) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [k, v] of Object.entries(post.fields || {})) form.append(k, v);
    form.append("file", a.file, a.name);
    const xhr = new XMLHttpRequest();
    a.xhr = xhr;
    xhr.open("POST", post.url);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) showProgress(a, e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      a.xhr = null;
      if (xhr.status >= 200 && xhr.status < 300) {
        showProgress(a, 1);
        resolve();
      } else {
        reject(new Error(storageRefusal(xhr)));
      }
    });
    xhr.addEventListener("error", () => {
      a.xhr = null;
      reject(new Error("the file could not be sent to the storage (network error, or a refusal the browser hides)"));
    });
    xhr.addEventListener("abort", () => {
      a.xhr = null;
      reject(new Error("the upload was cancelled"));
    });
    xhr.send(form);
  });
}

// storageRefusal puts S3's error answer (XML: Code, Message) in words.
function storageRefusal(xhr) {
  let code = "", message = "";
  try {
    const doc = new DOMParser().parseFromString(xhr.responseText || "", "application/xml");
    const text = (tag) => { const el = doc.querySelector("Error > " + tag); return el ? el.textContent.trim() : ""; };
    code = text("Code");
    message = text("Message");
  } catch (_) { /* not XML: the status says what there is */ }
  let out = "the storage refused the file";
  if (message) out += ": " + message.replace(/\.$/, "");
  return out + " (" + (code || "HTTP " + xhr.status) + ")";
}

// trayView is an attachment of the next message: the attachment's view
// with its upload progress and a button that removes it.
function trayView(a) {
  const v = attachmentView(a);
  const progress = document.createElement("progress");
  progress.max = 100;
  progress.value = 0;
  progress.hidden = true;
  progress.setAttribute("aria-label", "Uploading " + a.name);
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "att-remove secondary";
  remove.textContent = "×";
  remove.setAttribute("aria-label", "Remove " + a.name);
  remove.title = "Remove";
  remove.addEventListener("click", () => removeAttachment(a));
  v.li.append(progress, remove);
  return Object.assign(v, { progress, remove });
}

const STATE_TEXT = { declaring: "Preparing…", uploading: "Uploading…", checking: "Checking…" };

function setAttachmentState(a, status) {
  const v = a.view;
  a.status = status;
  v.li.dataset.state = status;
  v.progress.hidden = status !== "uploading";
  if (status === "ready") {
    v.info.textContent = attachmentFacts(a.upload);
    if (isImage(a.contentType) && a.upload.url) setThumb(v, a.upload, a.upload.url);
  } else {
    v.info.textContent = fmtBytes(a.size) + " · " + (STATE_TEXT[status] || status);
  }
  updateComposer();
}

function showProgress(a, fraction) {
  const pct = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
  a.view.progress.value = pct;
  a.view.li.dataset.progress = String(pct);
}

// failAttachment shows why a file is not attached, as an alert; the file
// stays in the tray until dismissed or the message is sent.
function failAttachment(a, reason) {
  const v = a.view;
  a.status = "failed";
  v.li.dataset.state = "failed";
  v.progress.hidden = true;
  const info = document.createElement("small");
  info.className = "att-info";
  info.setAttribute("role", "alert");
  info.textContent = "Not attached: " + reason;
  v.info.replaceWith(info);
  v.info = info;
  v.remove.setAttribute("aria-label", "Dismiss " + a.name);
  v.remove.title = "Dismiss";
  updateComposer();
}

function removeAttachment(a) {
  const i = state.attachments.indexOf(a);
  a.removed = true;
  if (a.xhr) a.xhr.abort();
  if (a.upload) deleteUpload(a.upload.id, a.status === "failed");
  dropFromTray(a);
  // Focus goes to the next attachment's button, else back to the Attach one.
  const next = state.attachments[Math.min(i, state.attachments.length - 1)];
  (next ? next.view.remove : $("attach")).focus();
}

// deleteUpload deletes an unsent upload; quietly for a refused one, which
// expires anyway.
async function deleteUpload(id, quiet) {
  try {
    await api("DELETE", "/uploads/" + encodeURIComponent(id));
  } catch (e) {
    if (!quiet) showError("Could not delete the upload: " + e.message + " (an unsent upload expires after a day)");
  }
}

function dropFromTray(a) {
  state.attachments = state.attachments.filter((x) => x !== a);
  a.view.li.remove();
  updateComposer();
}

// clearTray empties the tray: once its ready attachments were sent (sent:
// a refused one goes too, its reason seen), or when another user signs in
// (unsent uploads are abandoned, and expire).
function clearTray(sent) {
  for (const a of [...state.attachments]) {
    a.removed = true;
    if (a.xhr) a.xhr.abort();
    if (sent && a.status === "failed" && a.upload) deleteUpload(a.upload.id, true);
    dropFromTray(a);
  }
}

function busyAttachments() {
  return state.attachments.filter((a) => a.status !== "ready" && a.status !== "failed");
}

// updateComposer shows the tray when it holds anything; a message of
// attachments alone needs no text.
function updateComposer() {
  $("attachments").hidden = state.attachments.length === 0;
  $("message").required = !state.attachments.some((a) => a.status !== "failed");
}

// ---------- sending ----------

// send sends text (may be empty when there are attachments) with the ready
// attachments atts.
async function send(text, atts) {
  const requestId = newId();
  const frame = { action: "sendMessage", requestId };
  if (text) frame.text = text;
  if (atts.length) frame.attachments = atts.map((a) => a.upload.id);
  if (state.conversationId) frame.conversationId = state.conversationId;
  const promptId = $("prompt-select").value;
  if (promptId) frame.promptId = promptId;
  Object.assign(frame, modelOptions());
  const data = JSON.stringify(frame);
  if (new TextEncoder().encode(data).length > MAX_FRAME_BYTES) {
    showError("That message is too long: a WebSocket frame carries at most 32 KB.");
    return false;
  }
  await connect();
  showError("");
  const mine = addMessage("user", text);
  if (atts.length) showAttachments(mine, atts.map((a) => a.upload));
  const view = addMessage("assistant", "");
  view.li.dataset.state = "streaming";
  view.li.setAttribute("aria-busy", "true");
  // seq is the last seq shown (-1: none yet), where a resume picks up.
  Object.assign(view, { seq: -1, pending: new Map(), sentIn: state.conversationId, model: "", messageId: "", thinking: null });
  state.replies.set(requestId, view);
  state.live.add(view);
  updateStop();
  state.ws.send(data);
  return true;
}

// ---------- wiring ----------

function bind() {
  $("user-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const sub = $("user-name").value.trim();
    if (!sub) return;
    disconnect();
    try {
      if (state.devConfig) {
        state.wsUrl = state.devConfig.webSocketUrl;
        state.httpUrl = state.devConfig.httpUrl;
      }
      state.mode = "dev";
      state.sub = sub;
      state.token = await fetchToken(sub);
    } catch (err) {
      showError("Sign-in failed: " + err.message);
      return;
    }
    await afterSignIn();
  });

  $("remote-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    disconnect();
    state.mode = "remote";
    state.wsUrl = $("ws-url").value.trim();
    state.httpUrl = $("http-url").value.trim().replace(/\/+$/, "");
    state.token = $("token").value.trim();
    state.sub = subOf(state.token);
    $("user-name").value = state.sub;
    await afterSignIn();
  });

  $("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const box = $("message");
    const text = box.value.trim();
    const ready = state.attachments.filter((a) => a.status === "ready");
    if (busyAttachments().length) {
      showError("Wait until the attachments have uploaded, or remove them.");
      return;
    }
    if (!text && !ready.length) return;
    if (!state.token) {
      showError("Sign in first.");
      $("user-name").focus();
      return;
    }
    try {
      if (await send(text, ready)) {
        box.value = "";
        clearTray(true);
      }
    } catch (err) {
      showError(err.message);
    }
  });

  $("attach").addEventListener("click", () => {
    if (!state.token) {
      showError("Sign in first.");
      $("user-name").focus();
      return;
    }
    $("file-input").click();
  });
  $("file-input").addEventListener("change", (e) => {
    const files = [...e.target.files];
    e.target.value = ""; // the same file may be picked again
    attachFiles(files);
  });

  // Files dropped on the composer are attached. One dropped elsewhere on
  // the page is ignored, rather than opened in place of the page.
  const composer = $("composer");
  const carriesFiles = (e) => !!e.dataTransfer && [...e.dataTransfer.types].includes("Files");
  let dragDepth = 0;
  composer.addEventListener("dragenter", (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    dragDepth++;
    composer.classList.add("dropping");
  });
  composer.addEventListener("dragleave", (e) => {
    if (!carriesFiles(e)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) composer.classList.remove("dropping");
  });
  composer.addEventListener("drop", (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    dragDepth = 0;
    composer.classList.remove("dropping");
    attachFiles([...e.dataTransfer.files]);
  });
  window.addEventListener("dragover", (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = composer.contains(e.target) ? "copy" : "none";
  });
  window.addEventListener("drop", (e) => {
    if (carriesFiles(e)) e.preventDefault();
  });

  // A pasted image (a screenshot, "Copy image") is attached. A paste that
  // also carries plain text is text: office apps add a picture of it.
  composer.addEventListener("paste", (e) => {
    const data = e.clipboardData;
    if (!data || !data.files.length || [...data.types].includes("text/plain")) return;
    e.preventDefault();
    attachFiles([...data.files]);
  });

  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });

  // Stops the newest reply still streaming.
  $("stop").addEventListener("click", () => {
    const view = [...state.live].pop();
    if (view) sendStop(view);
  });

  $("new-chat").addEventListener("click", () => {
    state.conversationId = "";
    renderConversation(null);
    for (const b of $("conversations").querySelectorAll("button")) b.setAttribute("aria-current", "false");
    $("message").focus();
  });

  $("model-select").addEventListener("change", updateModelOptions);
  $("thinking").addEventListener("change", updateModelOptions);

  $("prompt-select").addEventListener("change", () => {
    $("prompt-delete").disabled = !$("prompt-select").value;
  });

  $("prompt-delete").addEventListener("click", async () => {
    const sel = $("prompt-select");
    const p = state.prompts.find((x) => x.id === sel.value);
    if (!p || !window.confirm("Delete the prompt “" + p.name + "”?")) return;
    try {
      await api("DELETE", "/prompts/" + encodeURIComponent(p.id));
      await refreshPrompts("");
    } catch (err) {
      showError("Could not delete the prompt: " + err.message);
    }
  });

  $("prompt-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const p = await api("POST", "/prompts", { name: $("prompt-name").value, text: $("prompt-text").value });
      $("prompt-form").reset();
      await refreshPrompts(p.id);
    } catch (err) {
      showError("Could not save the prompt: " + err.message);
    }
  });
}

async function init() {
  loadSettings();
  bind();
  try {
    // Present only when the dev server serves this page.
    const res = await fetch("dev/config");
    if (res.ok) state.devConfig = await res.json();
  } catch (_) { /* served elsewhere */ }
  if (state.devConfig) {
    $("standin").hidden = !state.devConfig.standIn;
    if (state.mode === "dev") {
      state.wsUrl = state.devConfig.webSocketUrl;
      state.httpUrl = state.devConfig.httpUrl;
    }
  } else {
    $("remote").open = true;
  }
  $("user-name").value = state.sub;
  $("ws-url").value = state.mode === "remote" ? state.wsUrl : "";
  $("http-url").value = state.mode === "remote" ? state.httpUrl : "";
  if (state.token && state.wsUrl && state.httpUrl) await afterSignIn();
}

init();
