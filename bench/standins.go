package bench

import (
	"context"

	"github.com/p2/buddy/lambda/dev/standins"
)

// benchAudience is the JWT audience of the benchmark's issuer.
const benchAudience = "buddy-bench"

// benchStage is the WebSocket API stage the functions post to.
const benchStage = "bench"

// startStandIns starts what the functions call, all on loopback
// (lambda/dev/standins), so nothing a function does at init or in an
// invocation leaves the machine; DynamoDB Local with the benchmark's
// tables when withDB is set.
func startStandIns(ctx context.Context, withDB bool) (*standins.Set, error) {
	return standins.Start(ctx, standins.Options{
		DB:          withDB,
		TablePrefix: tablePrefix,
		Audience:    benchAudience,
		Stage:       benchStage,
		APIKey:      "sk-ant-benchmark",
	})
}
