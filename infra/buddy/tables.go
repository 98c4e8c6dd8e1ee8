package buddy

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/jsii-runtime-go"

	"github.com/p2/buddy/lambda/manifest"
)

// newTables declares one table per manifest.All entry, keyed by schema ID.
//
// On-demand billing (traffic is spiky and small), point-in-time recovery,
// encryption with the AWS-managed key aws/dynamodb (KMS-backed and
// auditable in CloudTrail, no key to administer; a customer key would add
// cost and a key policy without protecting against anything this stack
// faces). Physical names are left to CloudFormation (the functions get
// them through their environment), so a replacement never collides with a
// retained table. Production tables are retained and deletion-protected;
// dev tables go with the stack.
func newTables(stack awscdk.Stack, s Settings) map[string]awsdynamodb.Table {
	tables := map[string]awsdynamodb.Table{}
	for _, t := range manifest.All {
		props := &awsdynamodb.TableProps{
			PartitionKey: attr(t.PartitionKey),
			BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
			PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
				PointInTimeRecoveryEnabled: jsii.Bool(true),
			},
			Encryption:         awsdynamodb.TableEncryption_AWS_MANAGED,
			DeletionProtection: jsii.Bool(s.Prod),
			RemovalPolicy:      removalPolicy(s),
		}
		if t.SortKey != nil {
			props.SortKey = attr(*t.SortKey)
		}
		if t.TTLAttribute != "" {
			props.TimeToLiveAttribute = jsii.String(t.TTLAttribute)
		}
		table := awsdynamodb.NewTable(stack, jsii.String(t.ID+"Table"), props)
		for _, ix := range t.Indexes {
			gsi := &awsdynamodb.GlobalSecondaryIndexProps{
				IndexName:      jsii.String(ix.Name),
				PartitionKey:   attr(ix.PartitionKey),
				ProjectionType: awsdynamodb.ProjectionType_ALL,
			}
			if ix.SortKey != nil {
				gsi.SortKey = attr(*ix.SortKey)
			}
			table.AddGlobalSecondaryIndex(gsi)
		}
		tables[t.ID] = table
	}
	return tables
}

func attr(k manifest.Key) *awsdynamodb.Attribute {
	types := map[manifest.KeyType]awsdynamodb.AttributeType{
		manifest.String: awsdynamodb.AttributeType_STRING,
		manifest.Number: awsdynamodb.AttributeType_NUMBER,
	}
	at, ok := types[k.Type]
	if !ok {
		panic("schema key " + k.Name + " has unknown type " + string(k.Type))
	}
	return &awsdynamodb.Attribute{Name: jsii.String(k.Name), Type: at}
}

// removalPolicy: production stages keep their resources when the stack is
// deleted, other stages delete them. Always explicit, since CloudFormation
// imports only resources that carry a DeletionPolicy.
func removalPolicy(s Settings) awscdk.RemovalPolicy {
	if s.Prod {
		return awscdk.RemovalPolicy_RETAIN
	}
	return awscdk.RemovalPolicy_DESTROY
}
