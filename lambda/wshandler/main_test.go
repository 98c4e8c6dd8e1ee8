package wshandler_test

import (
	"os"
	"testing"

	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/store"
)

func TestMain(m *testing.M) { os.Exit(dynamodblocal.RunTests(m)) }

// newStore is the real DynamoDB store, on tables of the test's own.
func newStore(t testing.TB) *store.Dynamo {
	return store.NewDynamo(dynamodblocal.TestTables(t))
}
