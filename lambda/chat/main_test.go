package chat_test

import (
	"os"
	"testing"

	"github.com/p2/buddy/lambda/dev/dynamodblocal"
)

func TestMain(m *testing.M) { os.Exit(dynamodblocal.RunTests(m)) }
