package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/obs"
	"github.com/p2/buddy/lambda/tokens"
)

// Quota is quota.worst_overshoot_tokens: many sends of one user at once,
// with long inputs, against a small DAILY_TOKEN_LIMIT, round after round;
// how far the day's used tokens ever went past the limit.
type Quota struct {
	DailyTokenLimit int64 `json:"daily_token_limit"`
	MaxTokens       int64 `json:"max_tokens"`
	SendsPerRound   int   `json:"sends_per_round"`
	Rounds          int   `json:"rounds"`
	// WorstOvershootTokens is max(0, the day's used tokens − the limit)
	// at its worst over every round of every trial: 0 means the day never
	// passed its limit. The goal is ≤ MaxTokens.
	WorstOvershootTokens int64 `json:"worst_overshoot_tokens"`
	// WorstUsedMinusLimitTokens is the same without the floor: how close
	// the day came to its limit (negative: it stayed under).
	WorstUsedMinusLimitTokens int64 `json:"worst_used_minus_limit_tokens"`
	// Over all trials: sends, those admitted (a start frame), those
	// refused before it by error code, and admitted ones that ended with
	// an error instead of end, by code.
	Sends            int            `json:"sends"`
	Admitted         int            `json:"admitted"`
	Refused          map[string]int `json:"refused"`
	FailedAfterStart map[string]int `json:"failed_after_start,omitempty"`
	// MaxInputTokens is the largest input (uncached, cache reads and
	// writes) one admitted reply counted.
	MaxInputTokens int64 `json:"max_input_tokens"`
	// UsageAgrees: after every round, GET /usage's today.used equaled
	// the sum of the day's usage rows and, where every admitted reply
	// ended with end, the sum of the end frames' usage, with nothing
	// reserved.
	UsageAgrees bool         `json:"used_equals_sum_of_replies"`
	Trials      []QuotaTrial `json:"trials"`
	// CutShort is the same run with replies cut short upstream (a
	// midstream error after CutAfter of MaxTokens tokens), whose output is
	// counted from an estimate (one token per three bytes of the text
	// produced): CutShortWorstOvershootTokens and
	// CutShortWorstUsedMinusLimitTokens as above.
	CutShortWorstOvershootTokens      int64       `json:"cut_short_worst_overshoot_tokens"`
	CutShortWorstUsedMinusLimitTokens int64       `json:"cut_short_worst_used_minus_limit_tokens"`
	CutAfter                          int         `json:"cut_after_tokens"`
	CutShort                          *QuotaTrial `json:"cut_short,omitempty"`
}

// QuotaTrial is one user's rounds under one MAX_INFLIGHT_REPLIES_PER_USER.
type QuotaTrial struct {
	MaxInflight int `json:"max_inflight_replies_per_user"`
	// CutAfter, when not 0, cut every reply short upstream after that
	// many tokens (the stand-in's [[fault=midstream]] [[after=N]]), the
	// inputs short.
	CutAfter int `json:"cut_after_tokens,omitempty"`
	// CountedOutputPerReply is, with CutAfter, the output tokens the day
	// counted per admitted reply (the usage rows' output over the
	// admitted replies): what one cut reply costs against the MAX_TOKENS
	// it reserved for its output.
	CountedOutputPerReply float64        `json:"counted_output_per_reply,omitempty"`
	Sends                 int            `json:"sends"`
	Admitted              int            `json:"admitted"`
	Refused               map[string]int `json:"refused"`
	FailedAfterStart      map[string]int `json:"failed_after_start,omitempty"`
	// UsedAfterRound is GET /usage's today.used once every reply of each
	// round had ended.
	UsedAfterRound []int64 `json:"used_after_round"`
	MaxInputTokens int64   `json:"max_input_tokens"`
	// Disagreements says where /usage, its rows and the end frames
	// differed (empty when they agree).
	Disagreements []string `json:"disagreements,omitempty"`
}

// The quota run's settings: a small daily limit, and a max tokens that
// leaves room for requests with long inputs.
const (
	quotaLimit     = 10_000
	quotaMaxTokens = 1_000
	// quotaRoundTimeout bounds one round: every reply ends within
	// seconds, so a round past it hangs on a frame that never came.
	quotaRoundTimeout = 2 * time.Minute
)

// quotaEnv is the environment of a quota trial's dev server.
func quotaEnv(maxInflight int) map[string]string {
	env := map[string]string{
		config.DailyTokenLimit: strconv.Itoa(quotaLimit),
		config.MaxTokens:       strconv.Itoa(quotaMaxTokens),
	}
	if maxInflight > 0 {
		env[config.MaxInflightReplies] = strconv.Itoa(maxInflight)
	}
	return env
}

// QuotaRounds has one new user open sends sockets and, rounds times, send
// on all of them at the same instant: a follow-up in the conversation the
// socket's last admitted send opened or continued, else a new conversation,
// each with a long input (quotaText) and a reply of up to max tokens. After
// each round, once every reply has ended, it reads the user's GET /usage.
// d's functions must run with DAILY_TOKEN_LIMIT limit and MAX_TOKENS
// maxTokens; maxInflight is their MAX_INFLIGHT_REPLIES_PER_USER, for the
// record.
//
// With cut > 0 every reply is cut short upstream after cut tokens and the
// inputs are short (quotaCutText): the output is then counted from the
// text produced, not from the upstream's final figure.
func (d *DevServer) QuotaRounds(ctx context.Context, sends, rounds int, limit, maxTokens int64, maxInflight, cut int) (*QuotaTrial, error) {
	tok, err := d.token(ctx, fmt.Sprintf("bench-quota-%d-%d", maxInflight, time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	clients := make([]*client, sends)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
	}()
	sem := make(chan struct{}, dialParallel)
	errs := make([]error, sends)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			clients[i], errs[i] = dialClient(ctx, d.srv.WebSocketURL, tok)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("opening %d sockets: %w", sends, err)
	}
	tr := &QuotaTrial{MaxInflight: maxInflight, CutAfter: cut, Refused: map[string]int{}, FailedAfterStart: map[string]int{}}
	text := func(r, i int, followUp bool) string {
		if cut > 0 {
			return quotaCutText(r, i, maxTokens, cut)
		}
		return quotaText(r, i, followUp, maxTokens)
	}
	failed := false // a reply ended with an error frame: its usage is not on the wire
	convs := make([]string, sends)
	var sum int64 // Σ the end frames' usage
	for round := range rounds {
		rctx, cancel := context.WithTimeout(ctx, quotaRoundTimeout)
		replies := make([]*Reply, sends)
		start := make(chan struct{})
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := c.sendIn(rctx, fmt.Sprintf("quota-%d-%d", round, i), convs[i], text(round, i, convs[i] != ""), nil)
				if err == nil {
					err = c.wait(rctx, r)
				}
				replies[i], errs[i] = r, err
			}()
		}
		close(start)
		wg.Wait()
		cancel()
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("round %d: %w", round+1, err)
		}
		for i, r := range replies {
			s := r.Stats()
			tr.Sends++
			convs[i] = ""
			switch {
			case s.Start && s.End:
				if s.Usage == nil {
					return nil, fmt.Errorf("round %d: an end frame without usage", round+1)
				}
				tr.Admitted++
				convs[i] = s.ConversationID
				sum += s.Usage.Total()
				tr.MaxInputTokens = max(tr.MaxInputTokens, s.Usage.InputTokens+s.Usage.CacheReadInputTokens+s.Usage.CacheCreationInputTokens)
			case s.Start:
				tr.Admitted++
				tr.FailedAfterStart[s.Code]++
				failed = true
			case s.Code != "":
				tr.Refused[s.Code]++
			default:
				return nil, fmt.Errorf("round %d: a send got neither start nor error", round+1)
			}
		}
		today, rows, err := d.usageToday(ctx, tok)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", round+1, err)
		}
		tr.UsedAfterRound = append(tr.UsedAfterRound, today.Used)
		if today.Used != rows.Total() || (!failed && today.Used != sum) || today.Reserved != 0 || today.Limit != limit {
			tr.Disagreements = append(tr.Disagreements, fmt.Sprintf("round %d: today.used %d, reserved %d, limit %d; the day's usage rows %d; the end frames %d",
				round+1, today.Used, today.Reserved, today.Limit, rows.Total(), sum))
		}
		if cut > 0 && tr.Admitted > 0 {
			tr.CountedOutputPerReply = round1(float64(rows.OutputTokens) / float64(tr.Admitted))
		}
	}
	return tr, nil
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// quotaToday is GET /usage's today.
type quotaToday struct {
	Limit    int64 `json:"limit"`
	Used     int64 `json:"used"`
	Reserved int64 `json:"reserved"`
}

// usageToday reads the user's GET /usage for today once nothing is
// reserved (each reply gives its reservation back as it is stored, just
// before its end frame; a lapsed one would keep the wait going until ctx
// ends) and returns today and the totals of today's usage rows.
func (d *DevServer) usageToday(ctx context.Context, tok string) (quotaToday, tokens.Usage, error) {
	day := time.Now().UTC().Format(time.DateOnly)
	var usage struct {
		Today  quotaToday   `json:"today"`
		Totals tokens.Usage `json:"totals"`
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var apiErr error
	_ = poll(wctx, func() bool {
		apiErr = d.api(wctx, tok, http.MethodGet, "/usage?from="+day+"&to="+day, nil, http.StatusOK, &usage)
		return apiErr == nil && usage.Today.Reserved == 0
	})
	if apiErr != nil {
		return quotaToday{}, tokens.Usage{}, fmt.Errorf("GET /usage: %w", apiErr)
	}
	return usage.Today, usage.Totals, nil
}

// quotaText is send i of round r: the stand-in's directives (a reply of
// 100 to maxTokens tokens, unpaced) and an input in one-letter words,
// whose tokens (the stand-in counts words) are as many as their bytes
// allow, half of them: 200-5,000 bytes opening a conversation (most of
// them long, some short enough to fit what is left of the day),
// 200-1,000 following one up (whose history is then the long part). The
// sizes vary with i and r so that the sends of a round differ.
func quotaText(r, i int, followUp bool, maxTokens int64) string {
	n := 100 + (i*89+r*37)%int(max(maxTokens-99, 1))
	size := 200 + (i*613+r*151)%4801
	if followUp {
		size = 200 + (i*211+r*97)%801
	}
	var b strings.Builder
	b.WriteString(directives(n, 0, 0))
	for j := 0; b.Len() < size; j++ {
		b.WriteByte(' ')
		b.WriteByte(byte('a' + (i+j)%26))
	}
	return b.String()
}

// quotaCutText is send i of round r of the cut-short trial: a reply of
// maxTokens tokens cut upstream after cut of them, and a short input
// (200-400 bytes of one-letter words), whose reservation is little more
// than the max tokens: the fewer bytes the input's bound has to spare, the
// more a cut reply's estimated output shows.
func quotaCutText(r, i int, maxTokens int64, cut int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[[tokens=%d]] [[fault=midstream]] [[after=%d]]", maxTokens, cut)
	size := 200 + (i*61+r*17)%201
	for j := 0; b.Len() < size; j++ {
		b.WriteByte(' ')
		b.WriteByte(byte('a' + (i+j)%26))
	}
	return b.String()
}

// quotaResult gathers the trials into the figure.
func quotaResult(sends, rounds int, trials []*QuotaTrial, cut *QuotaTrial) *Quota {
	q := &Quota{
		DailyTokenLimit: quotaLimit, MaxTokens: quotaMaxTokens, SendsPerRound: sends, Rounds: rounds,
		Refused: map[string]int{}, FailedAfterStart: map[string]int{}, UsageAgrees: true,
		WorstUsedMinusLimitTokens: math.MinInt64,
	}
	for _, t := range trials {
		q.Trials = append(q.Trials, *t)
		q.Sends += t.Sends
		q.Admitted += t.Admitted
		for k, v := range t.Refused {
			q.Refused[k] += v
		}
		for k, v := range t.FailedAfterStart {
			q.FailedAfterStart[k] += v
		}
		for _, u := range t.UsedAfterRound {
			q.WorstUsedMinusLimitTokens = max(q.WorstUsedMinusLimitTokens, u-quotaLimit)
		}
		q.MaxInputTokens = max(q.MaxInputTokens, t.MaxInputTokens)
		if len(t.Disagreements) > 0 {
			q.UsageAgrees = false
		}
	}
	q.WorstOvershootTokens = max(0, q.WorstUsedMinusLimitTokens)
	if cut != nil {
		q.CutShort, q.CutAfter = cut, cut.CutAfter
		q.CutShortWorstUsedMinusLimitTokens = math.MinInt64
		for _, u := range cut.UsedAfterRound {
			q.CutShortWorstUsedMinusLimitTokens = max(q.CutShortWorstUsedMinusLimitTokens, u-quotaLimit)
		}
		q.CutShortWorstOvershootTokens = max(0, q.CutShortWorstUsedMinusLimitTokens)
		if len(cut.Disagreements) > 0 {
			q.UsageAgrees = false
		}
	}
	return q
}

// quotaTrials are the MAX_INFLIGHT_REPLIES_PER_USER of the trials, one
// user and one dev server each: the default (2) and as many as the sends
// of a round, so that the in-flight cap refuses none and the quota alone
// has to hold.
func quotaTrials(sends int) []int {
	return []int{config.DefaultMaxInflightReplies, min(sends, maxInflightSetting)}
}

// maxInflightSetting is the most MAX_INFLIGHT_REPLIES_PER_USER takes.
const maxInflightSetting = 100

// quotaFigure takes quota.worst_overshoot_tokens into r, each trial on a
// dev server of its own (on d's DynamoDB Local) with DAILY_TOKEN_LIMIT and
// MAX_TOKENS set small.
func quotaFigure(ctx context.Context, o *Options, r *Results, d *DevServer, dir string) error {
	var trials []*QuotaTrial
	for _, inflight := range quotaTrials(o.QuotaSends) {
		t, err := quotaTrial(ctx, o, r, d, dir, inflight, 0)
		if err != nil {
			return err
		}
		trials = append(trials, t)
	}
	cut, err := quotaTrial(ctx, o, r, d, dir, min(o.QuotaSends, maxInflightSetting), quotaCutAfter)
	if err != nil {
		return err
	}
	q := quotaResult(o.QuotaSends, o.QuotaRounds, trials, cut)
	r.Quota = q
	r.Note("quota: DAILY_TOKEN_LIMIT=%d, MAX_TOKENS=%d; one new user per trial (MAX_INFLIGHT_REPLIES_PER_USER %s), %d sockets sending at the same instant, %d rounds, each round's replies all ended before /usage is read; a send follows up the conversation its socket's last admitted send was in, else opens one; inputs in one-letter words (the stand-in counts words as tokens, so a token is 2 bytes, the fewest it can be): 200-5,000 bytes opening a conversation, 200-1,000 following one up, replies of 100-%d tokens; worst_overshoot_tokens is max(0, today.used − limit) over every round, worst_used_minus_limit_tokens the same unfloored",
		quotaLimit, quotaMaxTokens, joinInts(quotaTrials(o.QuotaSends)), o.QuotaSends, o.QuotaRounds, quotaMaxTokens)
	return nil
}

// quotaCutAfter is where the cut-short trial's replies are cut: most of
// their MAX_TOKENS, so that the text produced is near the most a reply
// can have.
const quotaCutAfter = quotaMaxTokens - 10

// quotaTrial runs one trial on a dev server of its own.
func quotaTrial(ctx context.Context, o *Options, r *Results, d *DevServer, dir string, inflight, cut int) (*QuotaTrial, error) {
	what := fmt.Sprintf("MAX_INFLIGHT_REPLIES_PER_USER=%d", inflight)
	if cut > 0 {
		what += fmt.Sprintf(", replies cut after %d tokens", cut)
	}
	fmt.Fprintf(o.Progress, "dev server: quota, %d rounds of %d sends of one user at once (DAILY_TOKEN_LIMIT=%d, MAX_TOKENS=%d, %s)\n",
		o.QuotaRounds, o.QuotaSends, quotaLimit, quotaMaxTokens, what)
	sd, err := os.MkdirTemp(dir, "quota-")
	if err != nil {
		return nil, err
	}
	q, err := d.withEnv(ctx, sd, quotaEnv(inflight))
	if err != nil {
		return nil, err
	}
	t, err := q.QuotaRounds(ctx, o.QuotaSends, o.QuotaRounds, quotaLimit, quotaMaxTokens, inflight, cut)
	if cerr := q.Close(); cerr != nil {
		// The figures are taken by then: a slow shutdown (the stand-in
		// waits 5 s for a connection a cut stream left open) is noted,
		// not fatal.
		r.Note("quota: %s: closing its dev server: %v", what, cerr)
	}
	if err != nil {
		return nil, fmt.Errorf("quota, %s: %w", what, err)
	}
	for _, e := range q.summaries.failures() {
		r.Note("quota: %s: a server error (outcome %s): %s", what, obs.OutcomeServerError, e)
	}
	for _, m := range t.Disagreements {
		r.Note("quota: %s: /usage disagrees: %s", what, m)
	}
	return t, nil
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, " and ")
}
