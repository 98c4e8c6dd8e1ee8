package store_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/store"
)

// One DynamoDB Local for the whole test binary (its JVM takes seconds to
// start); rows keep apart by using their own user and conversation ids, so
// they can run in parallel.
var (
	db       *dynamodblocal.Local
	dbFailed error
)

func TestMain(m *testing.M) {
	// A unique prefix keeps this binary's tables apart even if the server
	// were ever shared.
	prefix := fmt.Sprintf("store-%s-", rand.Text()[:8])
	db, dbFailed = dynamodblocal.StartWithTables(context.Background(), dynamodblocal.Options{}, prefix)
	code := m.Run()
	if db != nil {
		if err := db.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// open is the store on the test binary's DynamoDB Local, with the test's
// clock.
func open(t *testing.T, now func() time.Time) store.Store {
	if dbFailed != nil {
		t.Fatal(dbFailed)
	}
	s := store.NewDynamo(db.Client, db.Tables)
	s.Now = now
	return s
}
