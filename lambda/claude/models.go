package claude

import "strings"

// ModelInfo is what this package needs to know of a Claude model family to
// build a request the API accepts: where a cache breakpoint can take
// effect, and which optional features the model (and Bedrock) offer.
type ModelInfo struct {
	// Family appears in every form of the model's id: Anthropic's
	// ("claude-opus-4-5-20251101") and Bedrock's
	// ("us.anthropic.claude-opus-4-5-20251101-v1:0").
	Family string
	// MinCacheTokens is the shortest prefix, in tokens, the prompt cache
	// stores; a breakpoint before it is ignored by the API.
	MinCacheTokens int64
	// Effort: the model takes output_config.effort (beta EffortBeta).
	Effort bool
	// BedrockCache1h: Bedrock accepts the 1-hour cache TTL for the model.
	BedrockCache1h bool
}

// models is the one table of model facts. Sources:
//   - Minimum cacheable prompt length, Anthropic prompt caching docs
//     (https://platform.claude.com/docs/en/build-with-claude/prompt-caching):
//     4096 tokens for Claude Opus 4.5 and Claude Haiku 4.5, 1024 for
//     Claude Sonnet 4.5.
//   - Effort (https://platform.claude.com/docs/en/build-with-claude/effort,
//     "What's new in Claude 4.5"): "Claude Opus 4.5 is the only model that
//     supports the effort parameter", beta header effort-2025-11-24.
//   - 1-hour TTL on Bedrock (Amazon Bedrock user guide, "Prompt caching for
//     faster model inference"; added 2026-01-26): extended TTL for Claude
//     Opus 4.5, Claude Haiku 4.5 and Claude Sonnet 4.5, 5 minutes only for
//     other models.
var models = []ModelInfo{
	{Family: "claude-opus-4-5", MinCacheTokens: 4096, Effort: true, BedrockCache1h: true},
	{Family: "claude-sonnet-4-5", MinCacheTokens: 1024, BedrockCache1h: true},
	{Family: "claude-haiku-4-5", MinCacheTokens: 4096, BedrockCache1h: true},
}

// DefaultMinCacheTokens is the minimum assumed for a model missing from the
// table (an operator's Bedrock ARN, a newer id): the smallest minimum the
// docs give for current Claude models. Erring low only places a breakpoint
// the API may ignore, which costs nothing.
const DefaultMinCacheTokens = 1024

// EffortBeta is the anthropic-beta flag Opus 4.5 requires with
// output_config.effort. The SDK's Bedrock support moves it into the body's
// anthropic_beta list, where Bedrock takes beta flags.
const EffortBeta = "effort-2025-11-24"

// MinThinkingBudget is the smallest thinking budget_tokens the API accepts.
const MinThinkingBudget = 1024

// Models returns the model families this package knows, a copy of its table.
func Models() []ModelInfo { return append([]ModelInfo(nil), models...) }

// LookupModel finds the family of id, in any of its forms.
func LookupModel(id string) (ModelInfo, bool) {
	for _, m := range models {
		if strings.Contains(id, m.Family) {
			return m, true
		}
	}
	return ModelInfo{}, false
}

// blockOverheadTokens bounds the tokens the API adds around each block (role
// and block framing) to those of its text.
const blockOverheadTokens = 8

// estimateTokens is an upper bound on the tokens of one block of text: a
// token covers at least one byte (byte-level tokenizers fall back to single
// bytes), so bytes never undercount. The bound is deliberately high: it
// only keeps a breakpoint off a prefix that surely cannot be cached, while
// one placed on a prefix the API then finds too short is ignored at no cost;
// a low estimate would instead drop breakpoints that would have saved
// money.
func estimateTokens(text string) int64 {
	return int64(len(text)) + blockOverheadTokens
}
