// Command websocket-connect is p2-two-websocket-connect-two ($connect): it
// verifies the JWT in the `token` query parameter and records the connection.
package main

import (
	"github.com/p2/buddy/lambda/app"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/wshandler"
)

func main() {
	app.WebSocketMain(manifest.WebSocketConnect, func(w *wshandler.WebSocket) any { return w.Connect })
}
