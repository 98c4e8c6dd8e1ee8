// Package tokens is the one shape of a reply's token usage: as the model
// reports it, as the end frame carries it to the client, as the store keeps
// it on a message and sums it per day, and as /usage answers it.
package tokens

// Usage counts tokens as the Messages API reports them. The JSON names are
// the wire protocol's (the end frame, /usage); the dynamodbav names are the
// stored attributes, where a zero count is left out to keep items small.
type Usage struct {
	InputTokens              int64 `json:"inputTokens" dynamodbav:"inputTokens,omitempty"`
	OutputTokens             int64 `json:"outputTokens" dynamodbav:"outputTokens,omitempty"`
	CacheReadInputTokens     int64 `json:"cacheReadInputTokens" dynamodbav:"cacheReadInputTokens,omitempty"`
	CacheCreationInputTokens int64 `json:"cacheCreationInputTokens" dynamodbav:"cacheCreationInputTokens,omitempty"`
	// Estimated marks an output count estimated from the text: the reply
	// was cut short before the upstream reported its own count.
	Estimated bool `json:"estimated,omitempty" dynamodbav:"outputEstimated,omitempty"`
}

// Total is what the daily quota counts: every token billed.
func (u Usage) Total() int64 {
	return u.InputTokens + u.OutputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
}
