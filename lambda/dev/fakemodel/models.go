package fakemodel

import "strings"

// model is what the stand-in knows of a model family: the rules the API
// applies differ per model, and the stand-in must refuse what Claude would.
type model struct {
	// family appears in every form of the model's id: Anthropic's
	// ("claude-opus-4-5-20251101"), Bedrock's
	// ("us.anthropic.claude-opus-4-5-20251101-v1:0").
	family string
	// minCache is the shortest prefix, in tokens, that the prompt cache
	// stores; a breakpoint before it is ignored (no error, no cache).
	minCache int
	// effort: the model takes output_config.effort.
	effort bool
}

// models are the Claude 4.5 models. Minimum cacheable lengths are from the
// prompt caching docs ("4096 tokens for Claude Opus 4.5 ... 1024 tokens for
// Claude Sonnet 4.5 ... 4096 tokens for Claude Haiku 4.5"); effort is
// "supported only by Claude Opus 4.5" (effort docs, beta effort-2025-11-24).
var models = []model{
	{family: "claude-opus-4-5", minCache: 4096, effort: true},
	{family: "claude-sonnet-4-5", minCache: 1024},
	{family: "claude-haiku-4-5", minCache: 4096},
}

// lookupModel finds the family of id. An id the stand-in does not know (tests
// use made-up ones) gets 1024, the minimum of most Claude models, and no
// effort.
func lookupModel(id string) model {
	for _, m := range models {
		if strings.Contains(id, m.family) {
			return m
		}
	}
	return model{family: id, minCache: 1024}
}
