package s3local

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// shared is the one emulator of a test binary, started on first use, so a
// package whose tests never ask for a bucket starts none.
var shared struct {
	once    sync.Once
	srv     *Server
	err     error
	buckets atomic.Int64
}

// TestServer returns the test binary's shared emulator, starting it on
// first use: for a test that needs its endpoint and credentials (to
// configure the code under test as AWS would, by environment). A test
// binary that calls it runs its tests with RunTests in its TestMain.
func TestServer(t testing.TB) *Server {
	t.Helper()
	shared.once.Do(func() { shared.srv, shared.err = Start(context.Background(), Options{}) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

// TestBucket creates a fresh bucket of its own on the test binary's shared
// emulator and returns a client for it and the bucket's name. Tests
// holding different buckets never see each other's objects.
func TestBucket(t testing.TB) (*s3.Client, string) {
	t.Helper()
	srv := TestServer(t)
	name := fmt.Sprintf("test-%d", shared.buckets.Add(1))
	if err := srv.CreateBucket(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return srv.Client(), name
}

// RunTests runs m and then stops the shared emulator, if one was started,
// and returns m's exit code: a package whose tests use TestBucket has
//
//	func TestMain(m *testing.M) { os.Exit(s3local.RunTests(m)) }
//
// Pdeathsig would take the emulator down with the test binary anyway, but
// not until the binary exits, and its temporary data directory would stay.
func RunTests(m interface{ Run() int }) int {
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	return code
}

// Around is m, run by RunTests: for a package that shares DynamoDB Local
// too, `os.Exit(dynamodblocal.RunTests(s3local.Around(m)))` stops both.
func Around(m interface{ Run() int }) interface{ Run() int } { return around{m} }

type around struct{ m interface{ Run() int } }

func (a around) Run() int { return RunTests(a.m) }
