// Command websocket-connect is p2-two-websocket-connect-two ($connect): it
// verifies the JWT in the `token` query parameter and records the connection.
package main

import (
	"context"

	"github.com/p2/buddy/lambda/app"
	"github.com/p2/buddy/lambda/manifest"
)

func main() {
	app.Main(manifest.WebSocketConnect, func(d *app.Deps) (any, error) {
		w, err := d.WebSocket(context.Background())
		if err != nil {
			return nil, err
		}
		return w.Connect, nil
	})
}
