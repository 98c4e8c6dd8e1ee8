// Command websocket-disconnect is p2-two-websocket-disconnect-two
// ($disconnect): it forgets the connection.
package main

import (
	"context"

	"github.com/p2/buddy/lambda/app"
	"github.com/p2/buddy/lambda/manifest"
)

func main() {
	app.Main(manifest.WebSocketDisconnect, func(d *app.Deps) (any, error) {
		w, err := d.WebSocket(context.Background())
		if err != nil {
			return nil, err
		}
		return w.Disconnect, nil
	})
}
