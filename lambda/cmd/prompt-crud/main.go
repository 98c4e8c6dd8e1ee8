// Command prompt-crud is p2-two-prompt-crud-two: saved system prompts under /prompts.
package main

import (
	"github.com/p2/buddy/lambda/app"
	"github.com/p2/buddy/lambda/manifest"
)

func main() {
	app.Main(manifest.PromptCRUD, func(d *app.Deps) (any, error) {
		rt, err := d.Router()
		if err != nil {
			return nil, err
		}
		return rt.Handle, nil
	})
}
