package httpapi_test

import (
	"os"
	"testing"

	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/dev/s3local"
)

// TestMain stops the DynamoDB Local the tests share: its JVM would
// otherwise outlive the last test until the binary exits.
func TestMain(m *testing.M) { os.Exit(dynamodblocal.RunTests(s3local.Around(m))) }
