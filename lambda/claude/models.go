package claude

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
