// Command usage-handler is p2-two-usage-handler-two: GET /usage, tokens and estimated cost.
package main

import (
	"github.com/p2/buddy/lambda/app"
	"github.com/p2/buddy/lambda/manifest"
)

func main() {
	app.Main(manifest.UsageHandler, func(d *app.Deps) (any, error) {
		rt, err := d.Router()
		if err != nil {
			return nil, err
		}
		return rt.Handle, nil
	})
}
