// Command websocket-message is p2-two-websocket-message-two (sendMessage,
// ping, $default): it answers client frames and runs the reply jobs it
// dispatches to itself.
package main

import (
	"context"

	"github.com/p2/buddy/lambda/app"
	"github.com/p2/buddy/lambda/manifest"
)

func main() {
	app.Main(manifest.WebSocketMessage, func(d *app.Deps) (any, error) {
		w, err := d.WebSocket(context.Background())
		if err != nil {
			return nil, err
		}
		return w.Message, nil
	})
}
