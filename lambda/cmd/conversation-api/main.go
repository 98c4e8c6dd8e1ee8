// Command conversation-api is p2-two-conversation-api-two: GET, PATCH and DELETE /conversations.
package main

import (
	"github.com/p2/buddy/lambda/app"
	"github.com/p2/buddy/lambda/manifest"
)

func main() {
	app.Main(manifest.ConversationAPI, func(d *app.Deps) (any, error) {
		rt, err := d.Router()
		if err != nil {
			return nil, err
		}
		return rt.Handle, nil
	})
}
