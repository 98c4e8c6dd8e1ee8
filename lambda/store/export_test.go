package store

// PromptCounterKey lets the external tests read the prompt counter raw
// and prove that no prompt call reaches it.
const PromptCounterKey = promptCounterKey
