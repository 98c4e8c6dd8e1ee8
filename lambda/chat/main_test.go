package chat_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/p2/buddy/lambda/dev/dynamodblocal"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := dynamodblocal.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}
