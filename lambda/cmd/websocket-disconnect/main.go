// Command websocket-disconnect is p2-two-websocket-disconnect-two
// ($disconnect): it forgets the connection.
package main

import (
	"github.com/p2/buddy/lambda/app"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/wshandler"
)

func main() {
	app.WebSocketMain(manifest.WebSocketDisconnect, func(w *wshandler.WebSocket) any { return w.Disconnect })
}
