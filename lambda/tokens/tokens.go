// Package tokens is the one shape of a reply's token usage: as the model
// reports it, as the end frame carries it to the client, as the store keeps
// it on a message and sums it per day, and as /usage answers it.
package tokens

// Usage counts tokens as the Messages API reports them; OutputTokens
// includes thinking, which the API bills as output. The JSON names are
// the wire protocol's (the end frame, /usage); the dynamodbav names are the
// stored attributes, where a zero count is left out to keep items small.
type Usage struct {
	InputTokens              int64 `json:"inputTokens" dynamodbav:"inputTokens,omitempty"`
	OutputTokens             int64 `json:"outputTokens" dynamodbav:"outputTokens,omitempty"`
	CacheReadInputTokens     int64 `json:"cacheReadInputTokens" dynamodbav:"cacheReadInputTokens,omitempty"`
	CacheCreationInputTokens int64 `json:"cacheCreationInputTokens" dynamodbav:"cacheCreationInputTokens,omitempty"`
	// CacheWrite5mInputTokens and CacheWrite1hInputTokens split
	// CacheCreationInputTokens by the lifetime of the cache entries written
	// (the API's usage.cache_creation.ephemeral_5m_input_tokens and
	// ephemeral_1h_input_tokens), since a 1-hour write is billed at 2x the
	// input price and a 5-minute one at 1.25x. CacheCreationInputTokens
	// stays the total, so Total and older readers are unaffected.
	CacheWrite5mInputTokens int64 `json:"cacheWrite5mInputTokens" dynamodbav:"cacheWrite5mInputTokens,omitempty"`
	CacheWrite1hInputTokens int64 `json:"cacheWrite1hInputTokens" dynamodbav:"cacheWrite1hInputTokens,omitempty"`
	// Estimated marks an output count estimated from the text: the reply
	// was cut short before the upstream reported its own count.
	Estimated bool `json:"estimated,omitempty" dynamodbav:"outputEstimated,omitempty"`
}

// Total is what the daily quota counts: every token billed.
func (u Usage) Total() int64 {
	return u.InputTokens + u.OutputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
}
