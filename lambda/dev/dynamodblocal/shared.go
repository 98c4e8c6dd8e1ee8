package dynamodblocal

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/p2/buddy/lambda/config"
)

// shared is the one in-memory DynamoDB Local of a test binary, started on
// first use: its JVM takes seconds to start, so a package pays that once,
// and a package whose tests never ask for tables pays nothing.
var shared struct {
	once sync.Once
	srv  *Server
	err  error
	sets atomic.Int64
}

// TestTables creates a fresh set of Buddy's tables, under a prefix of its
// own, on the test binary's shared DynamoDB Local, and returns a client and
// the table names. Tests holding different sets never see each other's
// rows. A test binary that calls it runs its tests with RunTests in its
// TestMain.
func TestTables(t testing.TB) (*dynamodb.Client, config.Tables) {
	t.Helper()
	shared.once.Do(func() { shared.srv, shared.err = Start(context.Background(), Options{}) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	client := NewClient(shared.srv.Endpoint())
	tables, err := CreateTables(context.Background(), client, fmt.Sprintf("t%d-", shared.sets.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return client, tables
}

// RunTests runs m and then stops the shared server, if one was started,
// and returns m's exit code: a package whose tests use TestTables has
//
//	func TestMain(m *testing.M) { os.Exit(dynamodblocal.RunTests(m)) }
//
// Pdeathsig would take the JVM down with the test binary anyway, but not
// until the binary exits, so it would outlive the last test.
// m is a *testing.M, or another runner of them (s3local.Around) when the
// package shares an S3 emulator too.
func RunTests(m interface{ Run() int }) int {
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	return code
}
