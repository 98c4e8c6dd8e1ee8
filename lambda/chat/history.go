package chat

import (
	"context"

	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/store"
)

// History bounds: the newest turns that fit are read and sent to the
// model. The request must fit the model's context window, which holds the
// system prompt, the history and the reply (max tokens); every allowed
// model (Claude 4.5) has 200K tokens. Tokens are only known after a
// count_tokens call, a round trip before every reply, but a token stands
// for at least one byte of text (the tokenizer works on bytes), so bytes
// counted as tokens never underestimate: a history within historyBudget
// fits whatever its language. Attachments count by Anthropic's published
// estimates (attachmentTokens), and their bytes, base64 on the wire, must
// also fit the provider's request size (requestLimit). The price is that
// ordinary text (some four bytes a token) fills about a quarter of the
// window before the oldest turns are left out; the newest turns, the ones
// that matter most, are always kept, and a turn is sent whole, attachments
// and all, or not at all.
const (
	contextTokens   = 200_000
	maxHistoryTurns = 100
	// turnOverhead allows for what frames each turn (role markers) and
	// the system prompt in the model's input.
	turnOverhead = 16
)

// historyBudget is the tokens of history a request with a system prompt of
// systemBytes and max tokens can carry. It is positive whatever the
// configuration (max tokens ≤ 64 000, a saved prompt ≤ 20 000 characters
// of at most four bytes), and the newest message goes out even when it
// alone is larger.
func historyBudget(systemBytes int, maxTokens int64) int {
	return max(1, contextTokens-int(maxTokens)-systemBytes-turnOverhead*(maxHistoryTurns+1))
}

// turnBytes is what a stored message costs in the model's input: its text
// in bytes, what frames it, and its attachments' tokens.
func turnBytes(m store.Message) int {
	return len(m.Text) + turnOverhead + int(attachmentTokens(m.Attachments))
}

// requestBytes is the size of a request's input, system prompt and turns
// as turnBytes counts them: an upper bound of its input tokens.
func requestBytes(system string, msgs []store.Message) int64 {
	n := int64(len(system) + turnOverhead)
	for _, m := range msgs {
		n += int64(turnBytes(m))
	}
	return n
}

// fit keeps the newest messages whose cost (turnBytes) fits budget and
// whose bytes on the wire fit wire, and at least the newest; the first
// kept is a user's, as the Messages API wants.
func fit(msgs []store.Message, budget int, wire int64) []store.Message {
	used, sent, from := 0, int64(0), len(msgs)
	for from > 0 {
		m := msgs[from-1]
		n, w := turnBytes(m), int64(len(m.Text))+wireBytes(m.Attachments)
		if from < len(msgs) && (used+n > budget || sent+w > wire) {
			break
		}
		used, sent = used+n, sent+w
		from--
	}
	for from < len(msgs)-1 && msgs[from].Role != store.RoleUser {
		from++
	}
	return msgs[from:]
}

// history is the newest page of stored messages as the model is sent
// them, in order. Empty (failed) assistant turns are skipped, and so is an
// assistant turn at the start: the Messages API wants the first turn to
// be the user's.
func history(msgs []store.Message) []store.Message {
	out := make([]store.Message, 0, len(msgs))
	for _, m := range msgs {
		// A reply still streaming (this one, or another running in the
		// same conversation) is not history yet; a user's message without
		// text carries attachments.
		if (m.Text == "" && len(m.Attachments) == 0) || m.Status == store.StatusStreaming || (len(out) == 0 && m.Role != store.RoleUser) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// turns are msgs as model turns, each with its attachments' bytes, read
// side by side.
func (s *Service) turnsOf(ctx context.Context, msgs []store.Message) ([]claude.Turn, error) {
	turns := make([]claude.Turn, len(msgs))
	var loads []attachmentLoad
	for i, m := range msgs {
		turns[i] = claude.Turn{Role: m.Role, Text: m.Text}
		if len(m.Attachments) > 0 {
			turns[i].Attachments = make([]claude.Attachment, len(m.Attachments))
			for j, a := range m.Attachments {
				turns[i].Attachments[j] = claude.Attachment{MediaType: a.ContentType, Tokens: attachmentTokens(m.Attachments[j : j+1])}
				loads = append(loads, attachmentLoad{a, &turns[i].Attachments[j]})
			}
		}
	}
	return turns, s.load(ctx, loads)
}
