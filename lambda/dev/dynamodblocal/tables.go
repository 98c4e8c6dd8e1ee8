package dynamodblocal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/manifest"
)

// CreateTables creates every table of manifest.All, named prefix + table ID,
// waits until all are ACTIVE and enables TTL where the schema names an
// expiry attribute, as the stack does. A table that already exists with the
// same keys is kept with its data (the dev server persists between runs);
// one with different keys is an error, since the store would fail on it
// later in a less obvious way.
//
// DynamoDB Local records the TTL setting but never deletes expired items;
// the store does not rely on TTL for correctness (it checks expiresAt).
func CreateTables(ctx context.Context, client *dynamodb.Client, prefix string) (config.Tables, error) {
	names := map[string]*string{}
	var tables config.Tables
	for _, dst := range []struct {
		table manifest.Table
		name  *string
	}{
		{manifest.Connections, &tables.Connections},
		{manifest.Conversations, &tables.Conversations},
		{manifest.Messages, &tables.Messages},
		{manifest.Prompts, &tables.Prompts},
		{manifest.Usage, &tables.Usage},
		{manifest.Replies, &tables.Replies},
		{manifest.Uploads, &tables.Uploads},
	} {
		*dst.name = prefix + dst.table.ID
		names[dst.table.ID] = dst.name
	}
	// Create all first and wait once: tables come up in parallel.
	for _, t := range manifest.All {
		name := names[t.ID]
		if name == nil {
			return config.Tables{}, fmt.Errorf("dynamodblocal: schema table %q has no field in config.Tables", t.ID)
		}
		if err := createTable(ctx, client, *name, t); err != nil {
			return config.Tables{}, err
		}
	}
	for _, t := range manifest.All {
		if err := waitActive(ctx, client, *names[t.ID]); err != nil {
			return config.Tables{}, err
		}
		if err := enableTTL(ctx, client, *names[t.ID], t.TTLAttribute); err != nil {
			return config.Tables{}, err
		}
	}
	return tables, nil
}

// enableTTL turns TTL on for attr unless it already is (a table kept from
// an earlier run): DynamoDB refuses to enable it twice.
func enableTTL(ctx context.Context, client *dynamodb.Client, name, attr string) error {
	if attr == "" {
		return nil
	}
	out, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
	if err != nil {
		return fmt.Errorf("dynamodblocal: describe TTL of %s: %w", name, err)
	}
	if d := out.TimeToLiveDescription; d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling {
		if got := aws.ToString(d.AttributeName); got != attr {
			return fmt.Errorf("dynamodblocal: table %s has TTL on %s, lambda/manifest says %s; delete the local data directory (or the table) and start again", name, got, attr)
		}
		return nil
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(attr), Enabled: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("dynamodblocal: enable TTL on %s: %w", name, err)
	}
	return nil
}

func createTable(ctx context.Context, client *dynamodb.Client, name string, t manifest.Table) error {
	in := createTableInput(name, t)
	_, err := client.CreateTable(ctx, in)
	var inUse *types.ResourceInUseException
	if errors.As(err, &inUse) {
		return checkExisting(ctx, client, in)
	}
	if err != nil {
		return fmt.Errorf("dynamodblocal: create table %s: %w", name, err)
	}
	return nil
}

func createTableInput(name string, t manifest.Table) *dynamodb.CreateTableInput {
	var attrs []types.AttributeDefinition
	define := func(k manifest.Key) {
		for _, a := range attrs {
			if *a.AttributeName == k.Name {
				return
			}
		}
		attrs = append(attrs, types.AttributeDefinition{AttributeName: aws.String(k.Name), AttributeType: types.ScalarAttributeType(k.Type)})
	}
	keySchema := func(pk manifest.Key, sk *manifest.Key) []types.KeySchemaElement {
		define(pk)
		ks := []types.KeySchemaElement{{AttributeName: aws.String(pk.Name), KeyType: types.KeyTypeHash}}
		if sk != nil {
			define(*sk)
			ks = append(ks, types.KeySchemaElement{AttributeName: aws.String(sk.Name), KeyType: types.KeyTypeRange})
		}
		return ks
	}
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		KeySchema:   keySchema(t.PartitionKey, t.SortKey),
	}
	for _, ix := range t.Indexes {
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName:  aws.String(ix.Name),
			KeySchema:  keySchema(ix.PartitionKey, ix.SortKey),
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		})
	}
	in.AttributeDefinitions = attrs
	return in
}

// checkExisting compares an existing table's keys and indexes with what
// CreateTables would have made.
func checkExisting(ctx context.Context, client *dynamodb.Client, want *dynamodb.CreateTableInput) error {
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: want.TableName})
	if err != nil {
		return fmt.Errorf("dynamodblocal: describe existing table %s: %w", *want.TableName, err)
	}
	got := out.Table
	same := keysString(got.KeySchema) == keysString(want.KeySchema) &&
		len(got.GlobalSecondaryIndexes) == len(want.GlobalSecondaryIndexes)
	for _, w := range want.GlobalSecondaryIndexes {
		i := slices.IndexFunc(got.GlobalSecondaryIndexes, func(g types.GlobalSecondaryIndexDescription) bool {
			return aws.ToString(g.IndexName) == *w.IndexName
		})
		same = same && i >= 0 && keysString(got.GlobalSecondaryIndexes[i].KeySchema) == keysString(w.KeySchema)
	}
	if !same {
		return fmt.Errorf("dynamodblocal: table %s exists with other keys or indexes than lambda/manifest defines; delete the local data directory (or the table) and start again", *want.TableName)
	}
	return nil
}

func keysString(ks []types.KeySchemaElement) string {
	var s string
	for _, k := range ks {
		s += aws.ToString(k.AttributeName) + ":" + string(k.KeyType) + ","
	}
	return s
}

// waitActive polls instead of using the SDK's TableExistsWaiter, whose
// 20-second minimum delay would dwarf DynamoDB Local's creation time (its
// tables are ACTIVE at once unless -delayTransientStatuses is given).
func waitActive(ctx context.Context, client *dynamodb.Client, name string) error {
	delay := 10 * time.Millisecond
	for {
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("dynamodblocal: describe table %s: %w", name, err)
		}
		active := out.Table.TableStatus == types.TableStatusActive
		for _, ix := range out.Table.GlobalSecondaryIndexes {
			active = active && ix.IndexStatus == types.IndexStatusActive
		}
		if active {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dynamodblocal: table %s not ACTIVE (status %s): %w", name, out.Table.TableStatus, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

// Local is a running DynamoDB Local holding Buddy's tables: what a
// TestMain or the dev server needs in one value.
type Local struct {
	*Server
	Client *dynamodb.Client
	Tables config.Tables
}

// StartWithTables starts a server and creates the tables with prefix. On
// error nothing is left running.
func StartWithTables(ctx context.Context, opts Options, prefix string) (*Local, error) {
	srv, err := Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	client := NewClient(srv.Endpoint())
	tables, err := CreateTables(ctx, client, prefix)
	if err != nil {
		_ = srv.Stop()
		return nil, err
	}
	return &Local{Server: srv, Client: client, Tables: tables}, nil
}
