package dynalite_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/dynalite"
	"github.com/p2/buddy/lambda/schema"
)

func start(t *testing.T, opts dynalite.Options) *dynalite.Server {
	t.Helper()
	s, err := dynalite.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

func TestStopFreesThePort(t *testing.T) {
	s := start(t, dynalite.Options{})
	host := strings.TrimPrefix(s.Endpoint(), "http://")
	if _, err := dynalite.NewClient(s.Endpoint()).ListTables(t.Context(), &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("running server does not answer ListTables: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if c, err := net.Dial("tcp", host); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", host)
	}
}

func TestCreateTablesIsIdempotent(t *testing.T) {
	s := start(t, dynalite.Options{})
	client := dynalite.NewClient(s.Endpoint())
	first, err := dynalite.CreateTables(t.Context(), client, "idem-")
	if err != nil {
		t.Fatal(err)
	}
	second, err := dynalite.CreateTables(t.Context(), client, "idem-")
	if err != nil {
		t.Fatalf("second CreateTables: %v", err)
	}
	want := config.Tables{Connections: "idem-Connections", Conversations: "idem-Conversations",
		Messages: "idem-Messages", Prompts: "idem-Prompts", Usage: "idem-Usage"}
	if first != want || second != want {
		t.Errorf("tables = %+v then %+v, want %+v", first, second, want)
	}
	out, err := client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(want.Conversations)})
	if err != nil {
		t.Fatal(err)
	}
	gsis := out.Table.GlobalSecondaryIndexes
	if len(gsis) != 1 || aws.ToString(gsis[0].IndexName) != schema.IndexConversationsByUpdated ||
		gsis[0].Projection.ProjectionType != types.ProjectionTypeAll || gsis[0].IndexStatus != types.IndexStatusActive {
		t.Errorf("conversations indexes = %+v, want one ACTIVE %s projecting all", gsis, schema.IndexConversationsByUpdated)
	}
}

func TestCreateTablesRejectsATableWithOtherKeys(t *testing.T) {
	s := start(t, dynalite.Options{})
	client := dynalite.NewClient(s.Endpoint())
	_, err := client.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:            aws.String("old-Usage"),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dynalite.CreateTables(t.Context(), client, "old-"); err == nil || !strings.Contains(err.Error(), "old-Usage") {
		t.Errorf("CreateTables over a stale table: err = %v, want one naming old-Usage", err)
	}
}

func TestDataPersistsInDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	put := func(s *dynalite.Server) {
		l := dynalite.NewClient(s.Endpoint())
		tables, err := dynalite.CreateTables(t.Context(), l, "dev-")
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(tables.Connections),
			Item: map[string]types.AttributeValue{schema.AttrConnectionID: &types.AttributeValueMemberS{Value: "c1"}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	first := start(t, dynalite.Options{Dir: dir})
	put(first)
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}

	local, err := dynalite.StartWithTables(t.Context(), dynalite.Options{Dir: dir}, "dev-")
	if err != nil {
		t.Fatal(err)
	}
	defer local.Stop()
	out, err := local.Client.GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(local.Tables.Connections),
		Key: map[string]types.AttributeValue{schema.AttrConnectionID: &types.AttributeValueMemberS{Value: "c1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Item == nil {
		t.Error("item written before the restart is gone")
	}
}

func TestStartFailures(t *testing.T) {
	failing := filepath.Join(t.TempDir(), "dynalite")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\necho 'cannot find module leveldown' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	emptyModule := t.TempDir()
	if err := os.WriteFile(filepath.Join(emptyModule, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		name    string
		env     string
		dir     string // working directory; "" keeps the package's
		port    int
		wantErr string
	}{
		{"missing override names the variable", filepath.Join(t.TempDir(), "nope"), "", 0, dynalite.EnvBinary},
		{"no module above the working directory says so", "", t.TempDir(), 0, "no go.mod"},
		{"module without node tools says how to install", "", emptyModule, 0, "make tools"},
		{"early exit quotes stderr", failing, "", 0, "cannot find module leveldown"},
		{"a taken port is reported", "", "", takenPort, "address in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(dynalite.EnvBinary, tc.env)
			if tc.dir != "" {
				t.Chdir(tc.dir)
			}
			s, err := dynalite.Start(context.Background(), dynalite.Options{Port: tc.port})
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

func TestBinaryFoundFromASubdirectory(t *testing.T) {
	t.Setenv(dynalite.EnvBinary, "")
	bin, err := dynalite.Binary()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(filepath.ToSlash(bin), "infra/node_modules/.bin/dynalite") {
		t.Errorf("Binary() = %s", bin)
	}
}
