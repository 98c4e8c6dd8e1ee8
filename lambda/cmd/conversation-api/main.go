// Command conversation-api is p2-two-conversation-api-two: GET, PATCH and DELETE /conversations.
package main

import (
	"github.com/p2/buddy/lambda/app"
	"github.com/p2/buddy/lambda/manifest"
)

func main() { app.HTTPMain(manifest.ConversationAPI) }
