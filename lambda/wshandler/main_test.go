package wshandler_test

import (
	"flag"
	"os"
	"testing"

	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/dev/s3local"
	"github.com/p2/buddy/lambda/store"
)

// soakReplies sizes the soak test: small by default so make test stays
// quick; go test -run Soak -soak=200 for a long one.
var soakReplies = flag.Int("soak", 6, "replies streamed by TestSoakDroppedSocketsResume")

func TestMain(m *testing.M) { os.Exit(dynamodblocal.RunTests(s3local.Around(m))) }

// newStore is the real DynamoDB store, on tables of the test's own.
func newStore(t testing.TB) *store.Dynamo {
	return store.NewDynamo(dynamodblocal.TestTables(t))
}
