package dynamodblocal_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/dev/internal/devproc"
	"github.com/p2/buddy/lambda/manifest"
)

// shared serves the tests that only need tables: the JVM takes seconds to
// start, so only the tests of starting and stopping start their own.
var shared *dynamodblocal.Local

func TestMain(m *testing.M) {
	local, err := dynamodblocal.StartWithTables(context.Background(), dynamodblocal.Options{}, "shared-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared = local
	code := m.Run()
	if err := local.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func TestCreateTablesIsIdempotentAndEnablesTTL(t *testing.T) {
	client := shared.Client
	first, err := dynamodblocal.CreateTables(t.Context(), client, "idem-")
	if err != nil {
		t.Fatal(err)
	}
	second, err := dynamodblocal.CreateTables(t.Context(), client, "idem-")
	if err != nil {
		t.Fatalf("second CreateTables (TTL already on): %v", err)
	}
	want := config.Tables{Connections: "idem-Connections", Conversations: "idem-Conversations",
		Messages: "idem-Messages", Prompts: "idem-Prompts", Usage: "idem-Usage", Replies: "idem-Replies", Uploads: "idem-Uploads"}
	if first != want || second != want {
		t.Errorf("tables = %+v then %+v, want %+v", first, second, want)
	}
	out, err := client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(want.Conversations)})
	if err != nil {
		t.Fatal(err)
	}
	gsis := out.Table.GlobalSecondaryIndexes
	if len(gsis) != 1 || aws.ToString(gsis[0].IndexName) != manifest.IndexConversationsByUpdated ||
		gsis[0].Projection.ProjectionType != types.ProjectionTypeAll || gsis[0].IndexStatus != types.IndexStatusActive {
		t.Errorf("conversations indexes = %+v, want one ACTIVE %s projecting all", gsis, manifest.IndexConversationsByUpdated)
	}
	for _, table := range manifest.All {
		t.Run(table.ID, func(t *testing.T) {
			out, err := client.DescribeTimeToLive(t.Context(), &dynamodb.DescribeTimeToLiveInput{TableName: aws.String("idem-" + table.ID)})
			if err != nil {
				t.Fatal(err)
			}
			d := out.TimeToLiveDescription
			wantStatus := types.TimeToLiveStatusDisabled
			if table.TTLAttribute != "" {
				wantStatus = types.TimeToLiveStatusEnabled
			}
			if d.TimeToLiveStatus != wantStatus || aws.ToString(d.AttributeName) != table.TTLAttribute {
				t.Errorf("TTL %s on %q, want %s on %q", d.TimeToLiveStatus, aws.ToString(d.AttributeName), wantStatus, table.TTLAttribute)
			}
		})
	}
}

func TestCreateTablesRejectsATableWithOtherKeys(t *testing.T) {
	_, err := shared.Client.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:            aws.String("old-Usage"),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dynamodblocal.CreateTables(t.Context(), shared.Client, "old-"); err == nil || !strings.Contains(err.Error(), "old-Usage") {
		t.Errorf("CreateTables over a stale table: err = %v, want one naming old-Usage", err)
	}
}

// The emulator's reason to exist here: a transaction whose condition fails
// writes nothing and says which item failed, as DynamoDB does.
func TestTransactionReportsCancellationReasons(t *testing.T) {
	ctx, client, table := t.Context(), shared.Client, aws.String(shared.Tables.Connections)
	conn := func(id string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{manifest.AttrConnectionID: &types.AttributeValueMemberS{Value: id}}
	}
	if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: conn("tx-existing")}); err != nil {
		t.Fatal(err)
	}
	absent := aws.String("attribute_not_exists(" + manifest.AttrConnectionID + ")")
	_, err := client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: table, Item: conn("tx-new"), ConditionExpression: absent}},
		{ConditionCheck: &types.ConditionCheck{TableName: table, Key: conn("tx-existing"), ConditionExpression: absent,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld}},
	}})
	var canceled *types.TransactionCanceledException
	if !errors.As(err, &canceled) {
		t.Fatalf("TransactWriteItems: err = %v, want a TransactionCanceledException", err)
	}
	var codes []string
	for _, r := range canceled.CancellationReasons {
		codes = append(codes, aws.ToString(r.Code))
	}
	if strings.Join(codes, ",") != "None,ConditionalCheckFailed" {
		t.Errorf("cancellation reasons %q, want None then ConditionalCheckFailed", codes)
	}
	if len(canceled.CancellationReasons) == 2 && canceled.CancellationReasons[1].Item == nil {
		t.Error("the failed check does not return the item it found")
	}
	got, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: table, Key: conn("tx-new"), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Item != nil {
		t.Error("the canceled transaction's put was written")
	}
}

// One test for both, since each start of the JVM costs seconds: Stop
// leaves no process and no listener, and the data written before it is
// there after a restart on the same directory.
func TestStopLeavesNothingAndDataPersistsInDir(t *testing.T) {
	// The path goes to the JVM inside an XML configuration (loopback.go):
	// XML's special characters must arrive as they are.
	dir := filepath.Join(t.TempDir(), `data <&> "'`)
	first, err := dynamodblocal.StartWithTables(t.Context(), dynamodblocal.Options{Dir: dir}, "dev-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Stop() })
	key := map[string]types.AttributeValue{manifest.AttrConnectionID: &types.AttributeValueMemberS{Value: "c1"}}
	_, err = first.Client.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(first.Tables.Connections), Item: key})
	if err != nil {
		t.Fatal(err)
	}
	pid, host := first.PID(), strings.TrimPrefix(first.Endpoint(), "http://")
	if err := first.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := first.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if runtime.GOOS == "linux" {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("process %d still exists after Stop (stat: %v)", pid, err)
		}
	}
	if c, err := net.Dial("tcp", host); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", host)
	}

	second, err := dynamodblocal.StartWithTables(t.Context(), dynamodblocal.Options{Dir: dir}, "dev-")
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	out, err := second.Client.GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(second.Tables.Connections), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if out.Item == nil {
		t.Error("item written before the restart is gone")
	}
}

func TestStartFailures(t *testing.T) {
	fakeJava := func(script string) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "java"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	emptyModule := t.TempDir()
	if err := os.WriteFile(filepath.Join(emptyModule, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Someone else's server holding the port and answering as DynamoDB
	// would: Start must not mistake it for its own.
	impostor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		fmt.Fprint(w, `{"TableNames":[]}`)
	}))
	defer impostor.Close()
	impostorPort := impostor.Listener.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		name    string
		path    string // PATH; "" keeps the test's
		dir     string // working directory; "" keeps the package's
		port    int
		linux   bool // needs /proc
		wantErr string
	}{
		{"no java says how to install it", t.TempDir(), "", 0, false, "make tools"},
		{"no module above the working directory says so", "", t.TempDir(), 0, false, "no go.mod"},
		{"module without the jar says how to install it", "", emptyModule, 0, false, "make tools"},
		{"early exit quotes stderr", fakeJava("echo 'Error: Could not find or load main class' >&2\nexit 1\n"), "", 0, false, "Could not find or load main class"},
		{"a port held by another server is reported", "", "", impostorPort, true, "address in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.linux && runtime.GOOS != "linux" {
				t.Skip("tells its own listener from another only with /proc")
			}
			if tc.path != "" {
				t.Setenv("PATH", tc.path)
			}
			if tc.dir != "" {
				t.Chdir(tc.dir)
			}
			s, err := dynamodblocal.Start(t.Context(), dynamodblocal.Options{Port: tc.port})
			if err == nil {
				s.Stop()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestPathsFoundFromASubdirectory(t *testing.T) {
	_, jar, lib, err := dynamodblocal.Paths()
	if err != nil {
		t.Fatal(err)
	}
	const dir = "infra/node_modules/amplify-dynamodb-simulator/emulator/"
	if !strings.HasSuffix(filepath.ToSlash(jar), dir+"DynamoDBLocal.jar") || !strings.HasSuffix(filepath.ToSlash(lib), dir+"DynamoDBLocal_lib") {
		t.Errorf("Paths() = %s, %s", jar, lib)
	}
}

// DynamoDB Local has no authentication: any signature will do. It must
// answer on the loopback address only, never on one another machine can
// reach.
func TestListensOnLoopbackOnly(t *testing.T) {
	_, port, err := net.SplitHostPort(strings.TrimPrefix(shared.Endpoint(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	type reach struct {
		name    string
		host    string
		answers bool
	}
	tests := []reach{{"the loopback address it serves", "127.0.0.1", true}}
	for _, ip := range nonLoopbackAddrs(t) {
		tests = append(tests, reach{"this machine's address " + ip.String(), ip.String(), false})
	}
	if len(tests) == 1 {
		t.Log("this machine has no address but loopback: only the loopback one is tried")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(tt.host, port), 2*time.Second)
			if err == nil {
				c.Close()
			}
			if answers := err == nil; answers != tt.answers {
				t.Errorf("%s:%s accepts connections: %v, want %v (dial: %v)", tt.host, port, answers, tt.answers, err)
			}
		})
	}
}

// nonLoopbackAddrs is where the emulator must not answer.
func nonLoopbackAddrs(t *testing.T) []net.IP {
	t.Helper()
	out, err := devproc.NonLoopbackAddrs()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
