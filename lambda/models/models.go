// Package models is the one table of facts about the Claude models Buddy
// serves: the model client builds requests from it, GET /models lists
// capabilities from it. Plain Go, so every function may link it. Prices
// are in lambda/pricing.
package models

import "strings"

// Info is what Buddy needs to know of a Claude model family: what a
// client may ask of it (GET /models lists it) and what a request to it
// must respect (where a cache breakpoint can take effect).
type Info struct {
	// Family appears in every form of the model's id: Anthropic's
	// ("claude-opus-4-5-20251101") and Bedrock's
	// ("us.anthropic.claude-opus-4-5-20251101-v1:0").
	Family string
	// MinCacheTokens is the shortest prefix, in tokens, the prompt cache
	// stores; a breakpoint before it is ignored by the API.
	MinCacheTokens int64
	// Thinking: the model takes extended thinking (a budget of at least
	// MinThinkingBudget tokens).
	Thinking bool
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
//   - Extended thinking: every Claude 4.5 model ("Extended thinking",
//     supported models), budget_tokens at least 1024.
//   - Effort (https://platform.claude.com/docs/en/build-with-claude/effort,
//     "What's new in Claude 4.5"): "Claude Opus 4.5 is the only model that
//     supports the effort parameter", beta header effort-2025-11-24.
//   - 1-hour TTL on Bedrock (Amazon Bedrock user guide, "Prompt caching for
//     faster model inference"; added 2026-01-26): extended TTL for Claude
//     Opus 4.5, Claude Haiku 4.5 and Claude Sonnet 4.5, 5 minutes only for
//     other models.
var table = []Info{
	{Family: "claude-opus-4-5", MinCacheTokens: 4096, Thinking: true, Effort: true, BedrockCache1h: true},
	{Family: "claude-sonnet-4-5", MinCacheTokens: 1024, Thinking: true, BedrockCache1h: true},
	{Family: "claude-haiku-4-5", MinCacheTokens: 4096, Thinking: true, BedrockCache1h: true},
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

// Lookup finds the family of id, in any of its forms.
func Lookup(id string) (Info, bool) {
	for _, m := range table {
		if strings.Contains(id, m.Family) {
			return m, true
		}
	}
	return Info{}, false
}
