package fakemodel

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// DefaultThinkingTokens is the thinking length, in tokens, when the request
// enables thinking and no [[thinking=N]] directive sets one: a few dozen, so a
// test or a dev session sees thinking frames without waiting for thousands.
// It never exceeds the request's budget.
const DefaultThinkingTokens = 32

// MinThinkingBudget is the smallest budget_tokens the API accepts.
const MinThinkingBudget = 1024

// EffortBeta is the beta flag Opus 4.5 requires with output_config.effort.
const EffortBeta = "effort-2025-11-24"

// thinkingDocs ends the API's thinking errors, which point at the docs.
const thinkingDocs = " Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"

// thinkingBudget is the request's budget when thinking is enabled, else 0.
func (r Request) thinkingBudget() int64 {
	if r.Thinking == nil || r.Thinking.Type != "enabled" || r.Thinking.BudgetTokens == nil {
		return 0
	}
	return *r.Thinking.BudgetTokens
}

// effort is the request's effort, "" when none.
func (r Request) effort() string {
	if r.OutputConfig == nil || r.OutputConfig.Effort == nil {
		return ""
	}
	return *r.OutputConfig.Effort
}

// hasBeta reports whether the request carries beta flag name: in the
// anthropic-beta header (comma-separated, possibly repeated, as the SDKs
// send it) or, on Bedrock, in the body's anthropic_beta list.
func (r Request) hasBeta(name string) bool {
	for _, v := range r.Header.Values("anthropic-beta") {
		for _, b := range strings.Split(v, ",") {
			if strings.TrimSpace(b) == name {
				return true
			}
		}
	}
	for _, b := range r.AnthropicBeta {
		if b == name {
			return true
		}
	}
	return false
}

// validateThinking applies the API's rules for thinking, effort and the
// sampling fields that conflict with thinking. Messages are the API's where
// they were observed (see the package doc); the others follow its style.
func validateThinking(r Request) string {
	if t := r.Thinking; t != nil {
		switch t.Type {
		case "disabled":
		case "enabled":
			switch b := t.BudgetTokens; {
			case b == nil:
				return "thinking.enabled.budget_tokens: Field required"
			case *b < MinThinkingBudget:
				return fmt.Sprintf("thinking.enabled.budget_tokens: Input should be greater than or equal to %d", MinThinkingBudget)
			case *b >= r.MaxTokens:
				return "`max_tokens` must be greater than `thinking.budget_tokens`." + thinkingDocs + "#max-tokens-and-context-window-size"
			}
			// Thinking samples at temperature 1 with no top_k; top_p may
			// only narrow to 0.95.
			switch {
			case r.Temperature != nil && *r.Temperature != 1:
				return "`temperature` may only be set to 1 when thinking is enabled." + thinkingDocs + "#important-considerations-when-using-extended-thinking"
			case r.TopK != nil:
				return "`top_k` must be unset when thinking is enabled." + thinkingDocs + "#important-considerations-when-using-extended-thinking"
			case r.TopP != nil && (*r.TopP < 0.95 || *r.TopP > 1):
				return "`top_p` must be between 0.95 and 1 when thinking is enabled." + thinkingDocs + "#important-considerations-when-using-extended-thinking"
			}
			// A request ending in an assistant turn asks Claude to go on
			// from it (a prefill); with thinking on, that turn must start
			// with the thinking it came with.
			if n := len(r.Messages); n > 0 && r.Messages[n-1].Role == "assistant" {
				last := r.Messages[n-1]
				if first := firstBlockType(last); first != "thinking" && first != "redacted_thinking" {
					return fmt.Sprintf("messages.%d.content.0.type: Expected `thinking` or `redacted_thinking`, but found `%s`. "+
						"When `thinking` is enabled, a final `assistant` message must start with a thinking block "+
						"(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. "+
						"To avoid this requirement, disable `thinking`.%s", n-1, first, thinkingDocs)
				}
			}
		default:
			// "adaptive" arrived with the 4.6 models; the 4.5 models take
			// a budget.
			return "thinking.type: Input should be 'enabled' or 'disabled'"
		}
	}
	if r.OutputConfig != nil && r.OutputConfig.Effort != nil {
		switch {
		case !r.hasBeta(EffortBeta):
			// Without the beta flag the field is unknown to the API.
			return "output_config: Extra inputs are not permitted (effort needs the beta header anthropic-beta: " + EffortBeta + ")"
		case !validEffort(*r.OutputConfig.Effort):
			return "output_config.effort: Input should be 'low', 'medium' or 'high'"
		case !lookupModel(r.Model).effort:
			return "This model does not support the effort parameter."
		}
	}
	for i, m := range r.Messages {
		for j, b := range m.Content {
			switch b.Type {
			case "thinking":
				switch {
				case b.Signature == nil:
					return fmt.Sprintf("messages.%d.content.%d.thinking.signature: Field required", i, j)
				case *b.Signature != signature(b.Thinking):
					// The API checks that thinking comes back as it was
					// sent; the stand-in's signatures are a hash of the
					// text, so an edited thinking block fails like there.
					return fmt.Sprintf("messages.%d.content.%d: Invalid `signature` in `thinking` block", i, j)
				}
			case "redacted_thinking":
				if b.Data == "" {
					return fmt.Sprintf("messages.%d.content.%d.redacted_thinking.data: Field required", i, j)
				}
			}
		}
	}
	return ""
}

func validEffort(e string) bool { return e == "low" || e == "medium" || e == "high" }

// effortShare is the share of the default reply and thinking lengths a
// request gets at each effort. Effort governs how many tokens Claude spends
// ("high" is the same as none), so the stand-in shortens its default
// lengths for lower effort; directives still set exact lengths, so tests
// stay exact.
func effortShare(effort string) (num, den int) {
	switch effort {
	case "low":
		return 1, 2
	case "medium":
		return 3, 4
	}
	return 1, 1
}

// scaled is n at the request's effort, at least 1 when n is.
func scaled(n int, effort string) int {
	num, den := effortShare(effort)
	if n <= 0 {
		return n
	}
	return max(1, n*num/den)
}

// signature is the stand-in's thinking signature: opaque to the client, as
// the API's is, but derived from the text so that a thinking block sent back
// can be checked.
func signature(thinking string) string {
	sum := sha256.Sum256([]byte("buddy fakemodel thinking\x00" + thinking))
	return "standin" + base64.StdEncoding.EncodeToString(sum[:])
}

var thinkingFiller = strings.Fields(`The user wants an answer from the offline stand-in, so
there is nothing to reason about: this text only exercises the thinking path of the protocol,
block by block, as Claude would stream it.`)

// thinkingWords is the deterministic thinking about said: n words.
func thinkingWords(said string, n int) []string {
	words := make([]string, 0, n)
	words = append(words, "Stand-in", "thinking", "about:")
	quote := strings.Fields(said)
	if len(quote) > echoWords {
		quote = quote[:echoWords]
	}
	if len(quote) == 0 {
		quote = []string{"(nothing)"}
	}
	words = append(words, quote...)
	for i := 0; len(words) < n; i++ {
		words = append(words, thinkingFiller[i%len(thinkingFiller)])
	}
	return words[:n]
}

// firstBlockType is the type of a message's first content block ("text"
// for a message given as a string).
func firstBlockType(m Message) string {
	if len(m.Content) == 0 {
		return "text"
	}
	return m.Content[0].Type
}
