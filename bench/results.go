package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"unicode/utf8"
)

// ColdStart is one runtime's init time in milliseconds.
type ColdStart struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	Runs int     `json:"runs"`
	// For Go: the function that was slowest at each percentile.
	WorstP50 string `json:"worst_p50,omitempty"`
	WorstP95 string `json:"worst_p95,omitempty"`
	// Emulator ran the bootstraps and reported their init (aws-lambda-rie),
	// at EmulatorVersion (the version go.mod pins).
	Emulator        string `json:"emulator,omitempty"`
	EmulatorVersion string `json:"emulator_version,omitempty"`
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	Samples int     `json:"samples"`
}

// Breakdown splits the ttft overhead at the model call, from the reply's
// own summary line, and gives the store's round trip for scale.
type Breakdown struct {
	// Client send → the reply job calls the model: gateway, route
	// handler and its store calls, dispatch, history load.
	BeforeModelP50 float64 `json:"before_model_call_p50"`
	BeforeModelP99 float64 `json:"before_model_call_p99"`
	// Model call → first delta posted (the summary's ttftMs).
	ModelToFirstPostP50 float64 `json:"model_call_to_first_post_p50"`
	ModelToFirstPostP99 float64 `json:"model_call_to_first_post_p99"`
	// One call of each kind on the dev server's DynamoDB Local, for scale.
	StoreGetItemP50 float64 `json:"dynamodb_local_get_item_p50"`
	StorePutItemP50 float64 `json:"dynamodb_local_put_item_p50"`
	StoreQueryP50   float64 `json:"dynamodb_local_query_p50"`
}

// Concurrent is the many-sockets run.
type Concurrent struct {
	Sockets           int     `json:"sockets"`
	LostFrames        int     `json:"lost_frames"`
	TTFTOverheadP99MS float64 `json:"ttft_overhead_p99_ms"`
	TTFTOverheadP50MS float64 `json:"ttft_overhead_p50_ms"`
	TokensPerReply    int     `json:"tokens_per_reply"`
	// Of the time to first delta, the part before the model call.
	BeforeModelP50MS *float64 `json:"before_model_call_p50_ms,omitempty"`
	BeforeModelP99MS *float64 `json:"before_model_call_p99_ms,omitempty"`
	Errors           int      `json:"errors"`
}

// StoreRoundTrips counts the DynamoDB round trips a message waits for one
// after the other between its arrival and the model call (calls made side
// by side count once), the most any sample took.
type StoreRoundTrips struct {
	NewConversation int `json:"new_conversation"`
	FollowUp        int `json:"follow_up"`
	// NewConversationFirstMessage is a new conversation as the first
	// message of a socket, which also resolves the connection.
	NewConversationFirstMessage int `json:"new_conversation_first_message"`
	// NewConversationSavedPrompt is a new conversation naming a saved
	// prompt (promptId).
	NewConversationSavedPrompt int `json:"new_conversation_saved_prompt"`
	Samples                    int `json:"samples"`
	// Chains name the calls of each count, in order.
	Chains map[string][]string `json:"chains,omitempty"`
}

// PromptCache is the input cost of one conversation on the default model
// with the default settings (PROMPT_CACHE=5m), priced from each turn's
// end-frame usage with lambda/pricing: as billed with prompt caching, and
// as the same input tokens would cost with none.
type PromptCache struct {
	Turns                int     `json:"turns"`
	InputCostUSDCached   float64 `json:"input_cost_usd_cached"`
	InputCostUSDUncached float64 `json:"input_cost_usd_uncached"`
	// SavedFraction is 1 - cached/uncached.
	SavedFraction float64 `json:"saved_fraction"`
	Model         string  `json:"model"`
	// SystemPromptTokens is the saved prompt's length (the stand-in counts
	// words as tokens).
	SystemPromptTokens int `json:"system_prompt_tokens"`
	// The conversation's input tokens by kind, summed over the turns.
	InputTokens        int64 `json:"input_tokens"`
	CacheReadTokens    int64 `json:"cache_read_input_tokens"`
	CacheWrite5mTokens int64 `json:"cache_write_5m_input_tokens"`
	CacheWrite1hTokens int64 `json:"cache_write_1h_input_tokens"`
	// FirstCacheReadTurn is the first turn (from 1) that read the cache;
	// 0 if none did.
	FirstCacheReadTurn int `json:"first_cache_read_turn"`
	// UsageSavedUSD is the user's savedUsd from GET /usage afterwards,
	// which should equal uncached - cached.
	UsageSavedUSD float64 `json:"usage_saved_usd"`
}

// Machine describes where the figures were taken.
type Machine struct {
	CPU       string            `json:"cpu"`
	Cores     int               `json:"cores"`
	GoVersion string            `json:"go_version"`
	GOARCH    string            `json:"goarch"`
	Kernel    string            `json:"kernel,omitempty"`
	Peers     map[string]string `json:"peers,omitempty"` // runtime → version the peer reported
}

// Goal is one target of the benchmark and whether this run met it.
type Goal struct {
	Name   string  `json:"name"`
	Target string  `json:"target"`
	Value  float64 `json:"value"`
	Met    bool    `json:"met"`
}

// Results is bench/results.json. A figure that was not measured is null,
// with the reason in Notes; nothing is ever filled in by hand.
type Results struct {
	Date    string  `json:"date"`
	Machine Machine `json:"machine"`

	ColdStartMS map[string]ColdStart `json:"cold_start_ms"`
	// Peer p50 over the worst Go function's p50.
	RatioNode   *float64 `json:"ratio_node"`
	RatioPython *float64 `json:"ratio_python"`
	// Every Go function's own figures, to see which one is the worst.
	ColdStartGoByFunctionMS map[string]ColdStart `json:"cold_start_go_by_function_ms,omitempty"`

	TTFTOverheadMS  *Latency   `json:"ttft_overhead_ms"`
	TTFTBreakdownMS *Breakdown `json:"ttft_breakdown_ms,omitempty"`
	PostsPerReply   *int       `json:"posts_per_reply"`
	ReplyTokens     int        `json:"reply_tokens,omitempty"`
	ReplyRate       int        `json:"reply_tokens_per_s,omitempty"`
	DeltaPosts      *int       `json:"delta_posts_per_reply,omitempty"`
	MinPostGapMS    *float64   `json:"min_delta_post_gap_ms,omitempty"`
	// Delta posts over the number of coalescing windows the stream
	// spanned; at most one post per window keeps it at or below 1.
	PostsPerWindow *float64 `json:"delta_posts_per_window,omitempty"`
	ReplySeconds   *float64 `json:"reply_s,omitempty"`
	MaxFrameBytes  *int     `json:"max_frame_bytes"`
	PeakRSSMB      *float64 `json:"peak_rss_mb"`
	// Deployment zip of each function, MiB (Lambda's MB limits are MiB).
	ZipMB      map[string]float64 `json:"zip_mb"`
	SynthS     *float64           `json:"synth_s"`
	Concurrent *Concurrent        `json:"concurrent"`
	// ResumeMS runs from a dropped client's reconnect to the first frame
	// it had missed.
	ResumeMS        *Latency         `json:"resume_ms"`
	StoreRoundTrips *StoreRoundTrips `json:"store_round_trips"`
	PromptCache     *PromptCache     `json:"prompt_cache"`
	// Quota is quota.worst_overshoot_tokens and how the sends fared.
	Quota *Quota `json:"quota"`
	// ResumePosts is resume.posts_per_frame_max and its cases.
	ResumePosts *ResumePosts `json:"resume"`
	// Attachments: upload to first token, complete of a large PDF, and
	// the message function's peak RSS with the largest request.
	Attachments *Attachments `json:"attachments,omitempty"`

	Goals []Goal   `json:"goals"`
	Notes []string `json:"notes,omitempty"`
}

// Note records why a figure is missing or what it includes.
func (r *Results) Note(format string, a ...any) { r.Notes = append(r.Notes, fmt.Sprintf(format, a...)) }

// Evaluate fills Goals from the figures present, with the benchmark's targets.
func (r *Results) Evaluate() {
	r.Goals = nil
	add := func(name, target string, v float64, met bool) {
		r.Goals = append(r.Goals, Goal{Name: name, Target: target, Value: round(v, 2), Met: met})
	}
	if r.RatioNode != nil {
		add("cold start node/go", ">= 10", *r.RatioNode, *r.RatioNode >= 10)
	}
	if r.RatioPython != nil {
		add("cold start python/go", ">= 10", *r.RatioPython, *r.RatioPython >= 10)
	}
	if r.TTFTOverheadMS != nil {
		add("ttft overhead p50 ms", "<= 2", r.TTFTOverheadMS.P50, r.TTFTOverheadMS.P50 <= 2)
		add("ttft overhead p99 ms", "<= 10", r.TTFTOverheadMS.P99, r.TTFTOverheadMS.P99 <= 10)
	}
	if r.PostsPerWindow != nil && r.MinPostGapMS != nil {
		// Mostly counted over the whole stream rather than gap by gap: a
		// post the stub timestamps late on a busy machine makes the next
		// gap look short without any extra post. The smallest gap still
		// has to be most of a window, so that a short-long pattern cannot
		// average out.
		add("delta posts per 100 ms window", "<= 1, no gap under 90 ms", *r.PostsPerWindow, *r.PostsPerWindow <= 1 && *r.MinPostGapMS >= 90)
	}
	if r.MaxFrameBytes != nil {
		add("max frame bytes", "<= 32768", float64(*r.MaxFrameBytes), *r.MaxFrameBytes <= 32*1024)
	}
	if r.PeakRSSMB != nil {
		add("peak RSS MB", "<= 40", *r.PeakRSSMB, *r.PeakRSSMB <= 40)
	}
	names := make([]string, 0, len(r.ZipMB))
	for n := range r.ZipMB {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		add("zip MB "+n, "<= 6", r.ZipMB[n], r.ZipMB[n] <= 6)
	}
	if r.SynthS != nil {
		add("synth s (warm)", "<= 20", *r.SynthS, *r.SynthS <= 20)
	}
	if r.Concurrent != nil {
		add(fmt.Sprintf("lost frames, %d sockets", r.Concurrent.Sockets), "= 0", float64(r.Concurrent.LostFrames), r.Concurrent.LostFrames == 0 && r.Concurrent.Errors == 0)
	}
	if r.ResumeMS != nil {
		add("resume p50 ms", "<= 1000", r.ResumeMS.P50, r.ResumeMS.P50 <= 1000)
	}
	if t := r.StoreRoundTrips; t != nil {
		add("store round trips, new conversation", "<= 2", float64(t.NewConversation), t.NewConversation <= 2)
		add("store round trips, follow-up", "<= 3", float64(t.FollowUp), t.FollowUp <= 3)
		add("store round trips, new conversation with a saved prompt", "<= 2", float64(t.NewConversationSavedPrompt), t.NewConversationSavedPrompt <= 2)
	}
	if c := r.PromptCache; c != nil {
		// The value is the saved share in percent.
		add("prompt cache saved %", "≥ 70% saved", 100*c.SavedFraction, c.SavedFraction >= 0.70)
	}
	if q := r.Quota; q != nil {
		// The day's count must also be the sum of its replies, or the
		// figure measures nothing.
		add("quota worst overshoot tokens", fmt.Sprintf("<= %d (MAX_TOKENS)", q.MaxTokens), float64(q.WorstOvershootTokens), q.WorstOvershootTokens <= q.MaxTokens && q.UsageAgrees)
		if q.CutShort != nil {
			add("quota worst overshoot tokens, replies cut short", fmt.Sprintf("<= %d (MAX_TOKENS)", q.MaxTokens), float64(q.CutShortWorstOvershootTokens), q.CutShortWorstOvershootTokens <= q.MaxTokens && q.UsageAgrees)
		}
	}
	if a := r.Attachments; a != nil && a.PeakShare != nil {
		add("attachments peak RSS share of memory", "<= 0.8 of memory_mb", *a.PeakShare, *a.PeakShare <= 0.8)
	}
	if p := r.ResumePosts; p != nil {
		add("resume posts per frame max", fmt.Sprintf("<= frames after afterSeq + 1 <= %d (MAX_TOKENS + 1)", p.BoundPosts), float64(p.PostsPerFrameMax), p.AsExpected && int64(p.PostsPerFrameMax) <= p.BoundPosts)
	}
}

// WriteJSON writes the results, indented, to path.
func (r *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Table prints the results as a Markdown table, the form docs/bench.md and
// the README carry.
func (r *Results) Table(w io.Writer) {
	fmt.Fprintf(w, "Buddy benchmark, %s — %s (%d cores), %s %s/%s\n\n", r.Date, r.Machine.CPU, r.Machine.Cores, r.Machine.GoVersion, "linux", r.Machine.GOARCH)
	var rows [][]string
	row := func(cells ...string) { rows = append(rows, cells) }
	row("figure", "value", "goal", "met")
	row("---", "---", "---", "---")
	goal := map[string]Goal{}
	for _, g := range r.Goals {
		goal[g.Name] = g
	}
	met := func(name string) (string, string) {
		g, ok := goal[name]
		if !ok {
			return "", ""
		}
		if g.Met {
			return g.Target, "yes"
		}
		return g.Target, "**no**"
	}
	na := "not measured (see notes)"
	for _, rt := range []string{RuntimeGo, RuntimeNode, RuntimePython} {
		c, ok := r.ColdStartMS[rt]
		v := na
		if ok {
			v = fmt.Sprintf("p50 %.1f / p95 %.1f (n=%d)", c.P50, c.P95, c.Runs)
			if rt == RuntimeGo && c.WorstP95 != "" {
				v += ", worst: " + strings.TrimSuffix(strings.TrimPrefix(c.WorstP95, "p2-two-"), "-two")
			}
		}
		label := "cold start ms, " + rt
		if v2 := r.Machine.Peers[rt]; v2 != "" && rt != RuntimeGo {
			label += " (" + v2 + ")"
		}
		row(label, v, "", "")
	}
	for _, p := range []struct {
		name string
		v    *float64
	}{{"cold start node/go", r.RatioNode}, {"cold start python/go", r.RatioPython}} {
		t, m := met(p.name)
		row(p.name+" (p50 ratio)", fmtPtr(p.v, "%.1f×"), t, m)
	}
	if r.TTFTOverheadMS != nil {
		t1, m1 := met("ttft overhead p50 ms")
		t2, m2 := met("ttft overhead p99 ms")
		row("ttft overhead ms p50", fmt.Sprintf("%.2f (n=%d)", r.TTFTOverheadMS.P50, r.TTFTOverheadMS.Samples), t1, m1)
		row("ttft overhead ms p99", fmt.Sprintf("%.2f", r.TTFTOverheadMS.P99), t2, m2)
		if b := r.TTFTBreakdownMS; b != nil {
			row("  of which before the model call, p50 / p99", fmt.Sprintf("%.2f / %.2f", b.BeforeModelP50, b.BeforeModelP99), "", "")
			row("  of which model call → first post, p50 / p99", fmt.Sprintf("%.2f / %.2f", b.ModelToFirstPostP50, b.ModelToFirstPostP99), "", "")
			row("  DynamoDB Local GetItem / PutItem / Query, p50", fmt.Sprintf("%.2f / %.2f / %.2f", b.StoreGetItemP50, b.StorePutItemP50, b.StoreQueryP50), "", "")
		}
	} else {
		row("ttft overhead ms", na, "", "")
	}
	posts := na
	if r.PostsPerReply != nil {
		posts = fmt.Sprintf("%d", *r.PostsPerReply)
		if r.DeltaPosts != nil && r.ReplySeconds != nil {
			posts += fmt.Sprintf(" (%d deltas over %.1f s)", *r.DeltaPosts, *r.ReplySeconds)
		}
	}
	row(fmt.Sprintf("posts per reply (%d tokens at %d/s)", r.ReplyTokens, r.ReplyRate), posts, "", "")
	t, m := met("delta posts per 100 ms window")
	row("delta posts per 100 ms window", fmtPtr(r.PostsPerWindow, "%.3f"), t, m)
	row("  smallest gap between delta posts ms (final flush aside)", fmtPtr(r.MinPostGapMS, "%.1f"), "", "")
	t, m = met("max frame bytes")
	row("max frame bytes", fmtIntPtr(r.MaxFrameBytes), t, m)
	t, m = met("peak RSS MB")
	row("peak RSS MB, message path", fmtPtr(r.PeakRSSMB, "%.1f"), t, m)
	names := make([]string, 0, len(r.ZipMB))
	for n := range r.ZipMB {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := r.ZipMB[n]
		t, m := met("zip MB " + n)
		row("zip MiB "+n, fmt.Sprintf("%.2f", v), t, m)
	}
	t, m = met("synth s (warm)")
	row("synth s (warm)", fmtPtr(r.SynthS, "%.1f"), t, m)
	if c := r.Concurrent; c != nil {
		t, m := met(fmt.Sprintf("lost frames, %d sockets", c.Sockets))
		row(fmt.Sprintf("%d sockets: lost frames / errors", c.Sockets), fmt.Sprintf("%d / %d", c.LostFrames, c.Errors), t, m)
		row(fmt.Sprintf("%d sockets: ttft overhead ms p50 / p99", c.Sockets), fmt.Sprintf("%.2f / %.2f", c.TTFTOverheadP50MS, c.TTFTOverheadP99MS), "", "")
		if c.BeforeModelP50MS != nil && c.BeforeModelP99MS != nil {
			row("  of which before the model call, p50 / p99", fmt.Sprintf("%.2f / %.2f", *c.BeforeModelP50MS, *c.BeforeModelP99MS), "", "")
		}
	} else {
		row("concurrent sockets", na, "", "")
	}
	if l := r.ResumeMS; l != nil {
		t, m := met("resume p50 ms")
		row("resume: reconnect → first missed frame ms, p50 / p99", fmt.Sprintf("%.1f / %.1f (n=%d)", l.P50, l.P99, l.Samples), "p50 "+t, m)
	} else {
		row("resume: reconnect → first missed frame ms", na, "", "")
	}
	if rt := r.StoreRoundTrips; rt != nil {
		t, m := met("store round trips, new conversation")
		row("store round trips before the model call, new conversation", fmt.Sprint(rt.NewConversation), t, m)
		t, m = met("store round trips, follow-up")
		row("store round trips before the model call, follow-up", fmt.Sprint(rt.FollowUp), t, m)
		row("  new conversation as a socket's first message", fmt.Sprint(rt.NewConversationFirstMessage), "", "")
		t, m = met("store round trips, new conversation with a saved prompt")
		row("store round trips before the model call, new conversation with a saved prompt", fmt.Sprint(rt.NewConversationSavedPrompt), t, m)
	} else {
		row("store round trips before the model call", na, "", "")
	}
	if c := r.PromptCache; c != nil {
		t, m := met("prompt cache saved %")
		row(fmt.Sprintf("prompt caching: input cost of a %d-turn conversation, cached / uncached", c.Turns),
			fmt.Sprintf("$%.4f / $%.4f (%.1f%% saved)", c.InputCostUSDCached, c.InputCostUSDUncached, 100*c.SavedFraction), t, m)
		row("  input tokens read from / written to the cache / uncached", fmt.Sprintf("%d / %d / %d", c.CacheReadTokens, c.CacheWrite5mTokens+c.CacheWrite1hTokens, c.InputTokens), "", "")
	} else {
		row("prompt caching: input cost of a conversation", na, "", "")
	}
	if q := r.Quota; q != nil {
		t, m := met("quota worst overshoot tokens")
		row(fmt.Sprintf("quota: worst overshoot of a %d-token day, tokens (%d sends at once × %d rounds)", q.DailyTokenLimit, q.SendsPerRound, q.Rounds),
			fmt.Sprintf("%d (used − limit at worst: %d)", q.WorstOvershootTokens, q.WorstUsedMinusLimitTokens), t, m)
		row("  sends admitted / refused", fmt.Sprintf("%d / %d (%s)", q.Admitted, q.Sends-q.Admitted, countsOf(q.Refused, q.FailedAfterStart)), "", "")
		row("  largest input of an admitted reply, tokens", fmt.Sprint(q.MaxInputTokens), "", "")
		if c := q.CutShort; c != nil {
			t, m := met("quota worst overshoot tokens, replies cut short")
			row(fmt.Sprintf("quota, replies cut short after %d tokens: worst overshoot, tokens", q.CutAfter),
				fmt.Sprintf("%d (used − limit at worst: %d)", q.CutShortWorstOvershootTokens, q.CutShortWorstUsedMinusLimitTokens), t, m)
			row("  sends admitted / refused; output counted per cut reply", fmt.Sprintf("%d / %d (%s); %.0f tokens", c.Admitted, c.Sends-c.Admitted, countsOf(c.Refused, c.FailedAfterStart), c.CountedOutputPerReply), "", "")
		}
	} else {
		row("quota: worst overshoot", na, "", "")
	}
	if p := r.ResumePosts; p != nil {
		t, m := met("resume posts per frame max")
		row("resume: @connections posts caused by one resume frame, worst", fmt.Sprint(p.PostsPerFrameMax), t, m)
		for _, c := range p.Cases {
			row(fmt.Sprintf("  %s, RESUMES_PER_MINUTE=%d: %d resume frames", c.Name, c.ResumesPerMinute, c.ResumeFrames),
				fmt.Sprintf("%d posts by them (expected %d; reply's frames %d, %d rate_limited)", c.ByResumes, c.ExpectedByResumes, c.ReplyFrames, c.RateLimited), "", "")
		}
	} else {
		row("resume: posts caused by one resume frame", na, "", "")
	}
	if a := r.Attachments; a != nil {
		from := ""
		if a.Date != "" && a.Date != r.Date {
			from = " (run of " + a.Date + ")"
		}
		if l := a.UploadToFirstTokenMS; l != nil {
			row(fmt.Sprintf("attachments: upload → first token ms, %.1f MiB PNG, p50 / p99%s", float64(a.PNGBytes)/(1<<20), from), fmt.Sprintf("%.1f / %.1f (n=%d)", l.P50, l.P99, l.Samples), "", "")
		}
		if l := a.CompleteMS; l != nil {
			row(fmt.Sprintf("attachments: complete ms, %.0f MiB PDF of %d pages, p50%s", float64(a.PDFBytes)/(1<<20), a.PDFPages, from), fmt.Sprintf("%.1f (p99 %.1f, n=%d)", l.P50, l.P99, l.Samples), "", "")
		}
		if a.PeakRSSMB != nil && a.PeakShare != nil {
			t, m := met("attachments peak RSS share of memory")
			v := fmt.Sprintf("%.1f of %d MB (%.0f%%)", *a.PeakRSSMB, a.MemoryMB, 100**a.PeakShare)
			if q := a.LargestRequest; q != nil {
				v += fmt.Sprintf("; %d PNGs, %d bytes base64", len(q.Images), q.WireBytes)
			}
			row("attachments: peak RSS MB, message function, largest allowed request"+from, v, t, m)
		}
	}
	writeMarkdown(w, rows)
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range r.Notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
}

// writeMarkdown pads the cells so the table reads well as plain text too.
// Widths count runes: the values hold "×" and "—".
func writeMarkdown(w io.Writer, rows [][]string) {
	var width []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			pad := width[i] - utf8.RuneCountInString(c)
			if c == "---" {
				c, pad = strings.Repeat("-", width[i]), 0
			}
			b.WriteString("| " + c + strings.Repeat(" ", pad) + " ")
		}
		fmt.Fprintln(w, b.String()+"|")
	}
}

// countsOf lists refusals by error code, then failures after start.
func countsOf(refused, failed map[string]int) string {
	var out []string
	for _, m := range []struct {
		counts map[string]int
		suffix string
	}{{refused, ""}, {failed, " after start"}} {
		codes := make([]string, 0, len(m.counts))
		for c := range m.counts {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		for _, c := range codes {
			out = append(out, fmt.Sprintf("%s %d%s", c, m.counts[c], m.suffix))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func fmtPtr(v *float64, format string) string {
	if v == nil || math.IsNaN(*v) {
		return "not measured"
	}
	return fmt.Sprintf(format, *v)
}

func fmtIntPtr(v *int) string {
	if v == nil {
		return "not measured"
	}
	return fmt.Sprintf("%d", *v)
}

// ThisMachine reads the CPU model from /proc/cpuinfo and the kernel from
// /proc/sys/kernel/osrelease.
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), GOARCH: runtime.GOARCH, CPU: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}
