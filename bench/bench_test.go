package bench

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/p2/buddy/infra/bundle"
	"github.com/p2/buddy/lambda/dev/rie"
	"github.com/p2/buddy/lambda/httpapi"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/pricing"
)

// These tests only check that the benchmark code runs on a tiny input;
// `make bench` takes the figures.

func TestPercentileIsNearestRank(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	for _, c := range []struct{ p, want float64 }{{50, 3}, {95, 5}, {99, 5}, {0, 1}, {20, 1}, {21, 2}} {
		if got := Percentile(xs, c.p); got != c.want {
			t.Errorf("p%v of %v = %v, want %v", c.p, xs, got, c.want)
		}
	}
}

func TestReplyCountsLostDuplicateAndOutOfOrderFrames(t *testing.T) {
	at := time.Now()
	frame := func(typ string, seq int) []byte {
		if typ != "delta" {
			return []byte(`{"type":"` + typ + `","requestId":"r"}`)
		}
		return []byte(fmt.Sprintf(`{"type":"delta","requestId":"r","seq":%d,"text":"t%d"}`, seq, seq))
	}
	for _, c := range []struct {
		name   string
		frames [][]byte
		lost   int
	}{
		{"in order", [][]byte{frame("start", 0), frame("delta", 0), frame("delta", 1), frame("end", 0)}, 0},
		{"gap of two", [][]byte{frame("start", 0), frame("delta", 0), frame("delta", 3), frame("end", 0)}, 2},
		{"duplicate", [][]byte{frame("start", 0), frame("delta", 0), frame("delta", 0), frame("delta", 1), frame("end", 0)}, 1},
		{"swapped", [][]byte{frame("start", 0), frame("delta", 1), frame("delta", 0), frame("end", 0)}, 2},
		{"no end", [][]byte{frame("start", 0), frame("delta", 0)}, 1},
		{"unreadable", [][]byte{frame("start", 0), []byte("{"), frame("end", 0)}, 1},
	} {
		r := NewReply(at)
		for i, f := range c.frames {
			r.Add(f, at.Add(time.Duration(i)*time.Millisecond))
		}
		if got := r.Stats().Lost; got != c.lost {
			t.Errorf("%s: lost %d, want %d", c.name, got, c.lost)
		}
	}
}

func TestZipIsDeflatedAndExecutable(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bootstrap")
	if err := os.WriteFile(bin, []byte(strings.Repeat("buddy ", 10000)), 0o755); err != nil {
		t.Fatal(err)
	}
	size, err := ZipBootstrap(bin, filepath.Join(dir, "f.zip"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(filepath.Join(dir, "f.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != 1 || zr.File[0].Name != "bootstrap" || zr.File[0].Method != zip.Deflate || zr.File[0].Mode().Perm()&0o111 == 0 {
		t.Fatalf("zip holds %+v", zr.File[0].FileHeader)
	}
	if size >= 60000 {
		t.Errorf("zip of 60000 repetitive bytes is %d bytes: not compressed", size)
	}
}

// peerEnv is a cold start environment on fresh stand-ins (the peers call
// nothing, so no DynamoDB Local), and the emulator.
func peerEnv(t *testing.T) (Env, string) {
	t.Helper()
	bin, err := rie.Binary(t.Context(), root(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := startStandIns(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return Env{Home: t.TempDir(), Stands: s}, bin
}

func root(t *testing.T) string {
	t.Helper()
	r, err := bundle.FindModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestColdStartNodePeer(t *testing.T) {
	node, err := LookNode(root(t))
	if err != nil {
		t.Skipf("Node peer not installed (%v); `make bench-peers` installs it", err)
	}
	env, bin := peerEnv(t)
	checkPeer(t, bin, env.NodeContender(node, filepath.Join(root(t), "bench", "peers", "node")), "node 22.")
}

func TestColdStartPythonPeer(t *testing.T) {
	python, err := LookPython(t.Context(), "")
	if err != nil {
		t.Skipf("Python peer cannot run (%v); `make bench-peers` installs python3-boto3", err)
	}
	env, bin := peerEnv(t)
	checkPeer(t, bin, env.PythonContender(python, filepath.Join(root(t), "bench", "peers", "python")), "python 3.")
}

func checkPeer(t *testing.T, rieBin string, c Contender, version string) {
	t.Helper()
	res, err := RunColdStarts(t.Context(), rieBin, []Contender{c}, 1, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if xs := res.Samples[c.Name]; len(xs) != 1 || xs[0] <= 0 {
		t.Errorf("samples %v, want one positive", xs)
	}
	if v := peerVersion(res.Answers[c.Name]); !strings.HasPrefix(v, version) {
		t.Errorf("peer reports %q, want %s…", v, version)
	}
}

// TestTinyRun is the whole driver with the smallest sizes: the six Go
// functions built as deployed and started once each, a short reply through
// the message path, and two dev-server requests on two sockets.
func TestTinyRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the six functions")
	}
	// No deadline but go test's own: on a cold, busy machine the build
	// of the six functions alone takes minutes.
	r, err := Run(t.Context(), Options{
		OutDir:      t.TempDir(),
		Runs:        1,
		ReplyTokens: 30, ReplyRate: 300,
		TTFTSamples: 2, Sockets: 2, ConcurrentTokens: 10,
		RoundTripSamples: 1, ResumeSamples: 2, CacheTurns: 2,
		AttachmentSamples: 1, AttachmentRSSRuns: 1,
		// The arm64 bundle is the stack's own, which infra/bundle's tests
		// build in the same run: weighing it costs a link at most.
		Zips: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	g, ok := r.ColdStartMS[RuntimeGo]
	if !ok || g.Runs != 1 || g.P50 <= 0 || len(r.ColdStartGoByFunctionMS) != len(manifest.Functions) {
		t.Errorf("Go cold start %+v over %d functions", g, len(r.ColdStartGoByFunctionMS))
	}
	if g.Emulator != rie.Command || !strings.HasPrefix(g.EmulatorVersion, "v") {
		t.Errorf("Go cold start taken under %q %q, want %s at go.mod's version", g.Emulator, g.EmulatorVersion, rie.Command)
	}
	if len(r.ZipMB) != len(manifest.Functions) {
		t.Errorf("zips weighed for %d functions, want %d: %v", len(r.ZipMB), len(manifest.Functions), r.ZipMB)
	}
	for _, n := range r.Notes {
		t.Log("note:", n)
	}
	if r.PostsPerReply == nil || r.MaxFrameBytes == nil || r.PeakRSSMB == nil {
		t.Error("message path figures missing (see the notes above; `make tools` installs DynamoDB Local)")
	} else if *r.PostsPerReply < 3 || *r.PeakRSSMB <= 0 {
		t.Errorf("message path: %d posts, %.1f MB peak RSS", *r.PostsPerReply, *r.PeakRSSMB)
	}
	if a := r.Attachments; a == nil || a.UploadToFirstTokenMS == nil || a.UploadToFirstTokenMS.Samples != 1 || a.CompleteMS == nil || a.PeakRSSMB == nil || *a.PeakRSSMB <= 0 || a.MemoryMB != manifest.WebSocketMessage.MemoryMB {
		t.Errorf("attachment figures %+v", a)
	}
	if r.TTFTOverheadMS == nil || r.TTFTOverheadMS.Samples != 2 {
		t.Errorf("ttft overhead %+v, want 2 samples", r.TTFTOverheadMS)
	}
	if c := r.Concurrent; c == nil || c.Sockets != 2 || c.LostFrames != 0 || c.Errors != 0 {
		t.Errorf("concurrent %+v, want 2 sockets, nothing lost", c)
	}
	checkDevServerMeasures(t, r, 2, 1)
	checkPromptCache(t, r, 2)
	var sb strings.Builder
	r.Table(&sb)
	if !strings.Contains(sb.String(), "cold start ms, go") {
		t.Errorf("table lacks the cold start row:\n%s", sb.String())
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	_ = json.Unmarshal(b, &keys)
	for _, k := range []string{"cold_start_ms", "ratio_node", "ratio_python", "ttft_overhead_ms", "posts_per_reply", "max_frame_bytes", "peak_rss_mb", "zip_mb", "synth_s", "concurrent", "resume_ms", "store_round_trips", "prompt_cache", "quota", "resume"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("results.json lacks %q", k)
		}
	}
}

// TestDevServerMeasuresOnATinyRun runs the dev-server measures that need
// no build (resume after a dropped socket, store round trips before the
// model call, the prompt caching conversation, the quota rounds, the
// posts of resume frames), so that even a -short run takes them.
func TestDevServerMeasuresOnATinyRun(t *testing.T) {
	r, err := Run(t.Context(), Options{OutDir: t.TempDir(), RoundTripSamples: 1, ResumeSamples: 2, CacheTurns: 3, QuotaSends: 4, QuotaRounds: 2, ResumeStorm: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range r.Notes {
		t.Log("note:", n)
	}
	checkDevServerMeasures(t, r, 2, 1)
	checkPromptCache(t, r, 3)
	checkQuota(t, r, 4, 2)
	checkResumePosts(t, r, 3)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Resume map[string]float64 `json:"resume_ms"`
		Trips  map[string]any     `json:"store_round_trips"`
		Cache  map[string]any     `json:"prompt_cache"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"p50", "p99"} {
		if _, ok := got.Resume[k]; !ok {
			t.Errorf("resume_ms lacks %q: %v", k, got.Resume)
		}
	}
	for _, k := range []string{"new_conversation", "follow_up"} {
		if _, ok := got.Trips[k]; !ok {
			t.Errorf("store_round_trips lacks %q: %v", k, got.Trips)
		}
	}
	for _, k := range []string{"turns", "input_cost_usd_cached", "input_cost_usd_uncached", "saved_fraction"} {
		if _, ok := got.Cache[k]; !ok {
			t.Errorf("prompt_cache lacks %q: %v", k, got.Cache)
		}
	}
	var sb strings.Builder
	r.Table(&sb)
	for _, row := range []string{"resume: reconnect → first missed frame", "store round trips before the model call, new conversation", "store round trips before the model call, follow-up", "store round trips before the model call, new conversation with a saved prompt", "prompt caching: input cost of a 3-turn conversation", "quota: worst overshoot", "resume: @connections posts caused by one resume frame"} {
		if !strings.Contains(sb.String(), row) {
			t.Errorf("the table lacks the row %q:\n%s", row, sb.String())
		}
	}
}

// checkDevServerMeasures checks that the resume and round-trip figures
// were taken, without judging them: goals belong to the benchmark.
func checkDevServerMeasures(t *testing.T, r *Results, resumes, trips int) {
	t.Helper()
	if l := r.ResumeMS; l == nil || l.Samples != resumes || l.P50 <= 0 || l.P99 < l.P50 {
		t.Errorf("resume %+v, want %d samples", l, resumes)
	}
	rt := r.StoreRoundTrips
	if rt == nil || rt.Samples != trips {
		t.Fatalf("store round trips %+v, want %d samples", rt, trips)
	}
	// Every message is stored before its reply starts: at least one
	// round trip each.
	if rt.NewConversation < 1 || rt.FollowUp < 1 || rt.NewConversationFirstMessage < 1 {
		t.Errorf("store round trips %+v, want at least one of each", rt)
	}
	if len(rt.Chains["follow_up"]) != rt.FollowUp {
		t.Errorf("the follow-up's chain %v does not have its %d calls", rt.Chains["follow_up"], rt.FollowUp)
	}
	if rt.NewConversationSavedPrompt < 1 || len(rt.Chains["new_conversation_saved_prompt"]) != rt.NewConversationSavedPrompt {
		t.Errorf("a new conversation with a saved prompt: %d round trips, chain %v", rt.NewConversationSavedPrompt, rt.Chains["new_conversation_saved_prompt"])
	}
}

// checkQuota checks that the quota rounds ran and that the day's count
// agreed with its replies, without judging the overshoot.
func checkQuota(t *testing.T, r *Results, sends, rounds int) {
	t.Helper()
	q := r.Quota
	if q == nil {
		t.Fatal("no quota figure")
	}
	trials := len(quotaTrials(sends))
	if q.Sends != trials*sends*rounds || len(q.Trials) != trials || q.Admitted < 1 {
		t.Errorf("quota %+v, want %d trials of %d rounds of %d sends, some admitted", q, trials, rounds, sends)
	}
	refused := 0
	for _, tr := range q.Trials {
		if len(tr.UsedAfterRound) != rounds {
			t.Errorf("trial %+v: want /usage read after each of %d rounds", tr, rounds)
		}
		for _, n := range tr.Refused {
			refused += n
		}
		for _, n := range tr.FailedAfterStart {
			refused += n
		}
	}
	if q.Admitted+refused != q.Sends {
		t.Errorf("quota: %d admitted and %d refused of %d sends", q.Admitted, refused, q.Sends)
	}
	if !q.UsageAgrees {
		t.Errorf("quota: GET /usage disagrees with the replies: %+v", q.Trials)
	}
}

// checkResumePosts checks that the resume cases ran and that each caused
// the posts the protocol says: those are the protocol's promises, not
// performance goals.
func checkResumePosts(t *testing.T, r *Results, storm int) {
	t.Helper()
	p := r.ResumePosts
	if p == nil {
		t.Fatal("no resume posts figure")
	}
	if len(p.Cases) != 4 || !p.AsExpected || p.MaxTokens <= 0 {
		t.Errorf("resume posts %+v, want 4 cases as expected", p)
	}
	for _, c := range p.Cases {
		if c.Name == "ended" && int64(c.WorstPerFrame) != int64(c.ReplyFrames)+1 {
			t.Errorf("replaying an ended reply of %d frames from afterSeq -1 cost %d posts, want its frames and the end", c.ReplyFrames, c.WorstPerFrame)
		}
		if c.Name == "storm" && c.ResumeFrames != storm {
			t.Errorf("storm case %+v, want %d resume frames", c, storm)
		}
	}
}

// checkPromptCache checks that the prompt caching conversation was priced,
// without judging the saving: goals belong to the benchmark.
func checkPromptCache(t *testing.T, r *Results, turns int) {
	t.Helper()
	c := r.PromptCache
	if c == nil {
		t.Fatal("no prompt caching figure")
	}
	if c.Turns != turns || c.InputCostUSDCached <= 0 || c.InputCostUSDUncached <= 0 || c.Model == "" {
		t.Errorf("prompt caching %+v, want %d turns priced", c, turns)
	}
	if want := round(1-c.InputCostUSDCached/c.InputCostUSDUncached, 4); math.Abs(c.SavedFraction-want) > 1e-3 {
		t.Errorf("saved fraction %v, want 1 - cached/uncached = %v", c.SavedFraction, want)
	}
	// The saved prompt is over Opus 4.5's 4096-token minimum, so there
	// is something to cache; how much it saves is the benchmark's.
	if c.SystemPromptTokens < 4096 || c.CacheReadTokens+c.CacheWrite5mTokens+c.CacheWrite1hTokens == 0 {
		t.Errorf("prompt caching %+v: a %d-token prompt, nothing cached", c, c.SystemPromptTokens)
	}
	if !c.savedAgrees() {
		t.Errorf("GET /usage savedUsd %v, want uncached - cached = %v", c.UsageSavedUSD, c.InputCostUSDUncached-c.InputCostUSDCached)
	}
}

// TestPromptCacheCostsPriceEachKindOfInput prices a conversation by hand:
// a first turn that writes its prefix, a second that reads it.
func TestPromptCacheCostsPriceEachKindOfInput(t *testing.T) {
	p := pricing.Price{Input: 5, CacheRead: 0.5, CacheWrite5m: 6.25, CacheWrite1h: 10}
	turns := []CacheTurn{
		{Input: 10, CacheCreation: 4000, CacheWrite5m: 4000},
		{Input: 0, CacheRead: 4000, CacheCreation: 300, CacheWrite5m: 200, CacheWrite1h: 100},
		// A write without its split counts as a 5-minute one.
		{Input: 5, CacheCreation: 50},
	}
	cached, uncached := PromptCacheCosts(p, turns)
	wantCached := (15*5 + 4000*0.5 + 4250*6.25 + 100*10) / 1e6
	wantUncached := float64(10+4000+4000+300+5+50) * 5 / 1e6
	if math.Abs(cached-wantCached) > 1e-12 || math.Abs(uncached-wantUncached) > 1e-12 {
		t.Errorf("costs %v / %v, want %v / %v", cached, uncached, wantCached, wantUncached)
	}
}

// TestCachePromptFitsASavedPrompt: the saved prompt has the words it is
// meant to have, within the characters a saved prompt may hold.
func TestCachePromptFitsASavedPrompt(t *testing.T) {
	p := cachePrompt(cachePromptWords)
	if n := len(strings.Fields(p)); n != cachePromptWords {
		t.Errorf("%d words, want %d", n, cachePromptWords)
	}
	if n := utf8.RuneCountInString(p); n > httpapi.MaxPromptTextRunes {
		t.Errorf("%d characters, more than a saved prompt's %d", n, httpapi.MaxPromptTextRunes)
	}
}

func TestSequentialCallsCountOverlappingCallsOnce(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	call := func(op string, from, to int) storeCall { return storeCall{Op: op, Start: at(from), End: at(to)} }
	tests := []struct {
		name  string
		calls []storeCall
		want  string
	}{
		{"none", nil, ""},
		{"one after the other", []storeCall{call("B", 3, 5), call("A", 0, 2), call("C", 6, 9)}, "A B C"},
		{"side by side count once", []storeCall{call("A", 0, 2), call("B", 1, 3), call("C", 4, 6), call("D", 4, 7)}, "A C"},
		{"a long call beside two short ones", []storeCall{call("L", 0, 10), call("A", 1, 3), call("B", 4, 6)}, "A B"},
		{"a call that starts as one ends follows it", []storeCall{call("A", 0, 2), call("B", 2, 4)}, "A B"},
	}
	for _, tt := range tests {
		if got := strings.Join(sequentialCalls(tt.calls), " "); got != tt.want {
			t.Errorf("%s: chain %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestWallProfileAttributesHandlerStacksOnly(t *testing.T) {
	text := "goroutine profile: total 3\n" +
		"1 @ 0x1 0x2 0x3\n" +
		"#\t0x1\tnet/http.(*persistConn).roundTrip+0x10\t/x.go:1\n" +
		"#\t0x2\tgithub.com/p2/buddy/lambda/store.(*Dynamo).GetConnection+0x20\t/s.go:2\n" +
		"#\t0x3\tgithub.com/p2/buddy/lambda/wshandler.(*WebSocket).Route+0x30\t/h.go:3\n" +
		"\n" +
		"2 @ 0x4 0x5\n" +
		"#\t0x4\tgithub.com/p2/buddy/lambda/chat.(*relay).run+0x10\t/r.go:1\n" +
		"#\t0x5\truntime.goexit+0x1\t/g.go:1\n"
	got := handlerFrames(text)
	want := "store.(*Dynamo).GetConnection ← wshandler.(*WebSocket).Route"
	if len(got) != 1 || !got[want] {
		t.Errorf("got %v, want only %q (the relay runs outside a handler)", got, want)
	}
}
