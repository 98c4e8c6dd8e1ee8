// Command websocket-message is p2-two-websocket-message-two (sendMessage,
// ping, $default): it answers client frames and runs the reply jobs it
// dispatches to itself.
package main

import (
	"github.com/p2/buddy/lambda/app"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/wshandler"
)

func main() {
	app.WebSocketMain(manifest.WebSocketMessage, func(w *wshandler.WebSocket) any { return w.Message })
}
