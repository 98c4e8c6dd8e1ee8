package fakemodel

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultTokens is the reply length when neither Options nor a directive
// sets one.
const DefaultTokens = 40

// Plan is what the server does with one request. Directives in the last user
// message and the server's Options produce it; Options.Script may change it.
type Plan struct {
	// Tokens is the reply length in deltas (one word each), capped by the
	// request's max_tokens less the thinking (then stop_reason is
	// "max_tokens").
	Tokens int
	// Thinking is the thinking length in deltas (one word each), streamed
	// as a thinking block before the text. It is 0 unless the request
	// enables thinking, and at most its budget_tokens.
	Thinking int
	// Rate paces the deltas in tokens per second; 0 sends them at once.
	Rate float64
	// TTFT is the pause before the first delta.
	TTFT time.Duration

	// Status, when non-zero, is answered before any stream, with the API's
	// error body for that status (429 rate_limit_error, 529
	// overloaded_error, ...) and retry-after for 429 and 5xx.
	Status int
	// Midstream answers 200, sends After deltas, then an error event
	// (overloaded_error; throttlingException on the Bedrock path).
	Midstream bool
	// Hang answers 200, sends message_start and After deltas, then nothing
	// until the client goes away (or the server is closed).
	Hang bool
	// After is the number of deltas (thinking and text alike) sent before
	// Midstream or Hang strikes.
	After int
	// Times, when > 0, limits Status, Midstream and Hang to the first Times
	// requests carrying this exact body; later ones (the client's retries)
	// are answered normally.
	Times int

	// Describe replies, instead of the usual text, one line per image or
	// document of the last user turn, in order ([[describe]], DESIGN §9):
	// "image <media type> <W>x<H> sha256:<12 hex>" or "document
	// application/pdf <N> pages sha256:<12 hex>", the hash of the bytes.
	// Tokens is then ignored; max_tokens still caps the reply.
	Describe bool

	// Header is added to the response, e.g. retry-after-ms: 1.
	Header http.Header
	// Raw, when set, is the whole body of a 200 streaming answer, written
	// verbatim (unknown events, streams cut short, odd usage).
	Raw string
}

func (p Plan) faulty() bool { return p.Status != 0 || p.Midstream || p.Hang }

// directive matches [[name=value]] and [[name]].
var directive = regexp.MustCompile(`\[\[\s*([a-z_]+)\s*(=\s*([^\]]*?)\s*)?\]\]`)

// parseDirectives reads the directives of text into p and returns text
// without them. Unknown names and bad values are errors, so a typo in a
// test fails loudly instead of silently testing the default path.
func parseDirectives(text string, p *Plan) (string, error) {
	var errs []string
	afterSet := false
	for _, m := range directive.FindAllStringSubmatch(text, -1) {
		name, val := m[1], m[3]
		bad := func(want string) { errs = append(errs, fmt.Sprintf("%s: %s", m[0], want)) }
		if name == "describe" {
			if m[2] != "" {
				bad("takes no value: write [[describe]]")
				continue
			}
			p.Describe = true
			continue
		}
		// whole is val as a whole number of at least least; anything else
		// is bad, with want.
		whole := func(least int, want string) (int, bool) {
			n, err := strconv.Atoi(val)
			if err != nil || n < least {
				bad(want)
				return 0, false
			}
			return n, true
		}
		switch name {
		case "tokens":
			if n, ok := whole(0, "want a whole number >= 0"); ok {
				p.Tokens = n
			}
		case "thinking":
			if n, ok := whole(0, "want a whole number of thinking tokens >= 0"); ok {
				p.Thinking = n
			}
		case "rate":
			f, err := strconv.ParseFloat(val, 64)
			if err != nil || f < 0 {
				bad("want tokens per second >= 0 (0 is as fast as possible)")
				continue
			}
			p.Rate = f
		case "ttft":
			if n, ok := whole(0, "want milliseconds >= 0"); ok {
				p.TTFT = time.Duration(n) * time.Millisecond
			}
		case "after":
			if n, ok := whole(0, "want a number of deltas >= 0"); ok {
				p.After, afterSet = n, true
			}
		case "times":
			if n, ok := whole(1, "want a number of requests >= 1"); ok {
				p.Times = n
			}
		case "fault":
			switch val {
			case "midstream":
				p.Midstream = true
			case "hang":
				p.Hang = true
			default:
				n, err := strconv.Atoi(val)
				if err != nil || n < 400 || n > 599 {
					bad("want midstream, hang or an HTTP error status such as 429, 529, 500")
					continue
				}
				p.Status = n
			}
		default:
			bad("unknown directive; known: tokens, thinking, rate, ttft, fault, after, times, describe")
		}
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("stand-in directives: %s", strings.Join(errs, "; "))
	}
	if p.Midstream && !afterSet {
		p.After = max(1, p.Tokens/2)
	}
	return strings.Join(strings.Fields(directive.ReplaceAllString(text, " ")), " "), nil
}

// echoWords is how much of the user's message the reply quotes.
const echoWords = 8

var filler = strings.Fields(`This reply is generated on this machine so that the whole path
from the socket to the store can run without calling Claude. Set ANTHROPIC_API_KEY to talk to the
real model.`)

// replyWords is the deterministic reply to said (the last user message,
// directives removed): a notice that this is a stand-in, a quote, filler.
func replyWords(said string, n int) []string {
	words := make([]string, 0, n)
	words = append(words, "Buddy", "offline", "stand-in", "here.")
	if quote := strings.Fields(said); len(quote) > 0 {
		end := `"`
		if len(quote) > echoWords {
			quote, end = quote[:echoWords], `…"`
		}
		words = append(words, "You", "said:")
		for i, w := range quote {
			if i == 0 {
				w = `"` + w
			}
			if i == len(quote)-1 {
				w += end
			}
			words = append(words, w)
		}
	}
	for i := 0; len(words) < n; i++ {
		words = append(words, filler[i%len(filler)])
	}
	return words[:n]
}
