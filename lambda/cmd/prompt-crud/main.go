// Command prompt-crud is p2-two-prompt-crud-two: saved system prompts under /prompts.
package main

import (
	"github.com/p2/buddy/lambda/app"
	"github.com/p2/buddy/lambda/manifest"
)

func main() { app.HTTPMain(manifest.PromptCRUD) }
