// Command usage-handler is p2-two-usage-handler-two: GET /usage, tokens and estimated cost.
package main

import (
	"github.com/p2/buddy/lambda/app"
	"github.com/p2/buddy/lambda/manifest"
)

func main() { app.HTTPMain(manifest.UsageHandler) }
