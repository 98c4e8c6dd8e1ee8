package buddy

import (
	"fmt"
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/manifest"
)

// Names the old deployment scripts created that are not in the runtime's packages: only the
// stack needs them.
const (
	RoleName          = "p2-two-lambda-role-two"
	SecretsPolicyName = "SecretsManagerAccess"
)

// SecretActions are exactly the actions of the SecretsManagerAccess policy.
var SecretActions = []string{"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}

// BedrockActions are granted only with AI_PROVIDER=bedrock.
var BedrockActions = []string{"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"}

// DynamoDB actions, as IAM names them. A TransactWriteItems has no action
// of its own: IAM checks each of its items as the single-item call it
// stands for (Put: PutItem, Update: UpdateItem, Delete: DeleteItem,
// ConditionCheck: ConditionCheckItem).
const (
	getItem            = "dynamodb:GetItem"
	putItem            = "dynamodb:PutItem"
	updateItem         = "dynamodb:UpdateItem"
	deleteItem         = "dynamodb:DeleteItem"
	conditionCheckItem = "dynamodb:ConditionCheckItem"
	query              = "dynamodb:Query"
	batchGetItem       = "dynamodb:BatchGetItem"
	batchWriteItem     = "dynamodb:BatchWriteItem"
)

// tableAccess is what one function may do with one table, or with one of
// its indexes (index set: the actions are granted on that index alone).
type tableAccess struct {
	fn      manifest.Function
	table   manifest.Table
	index   string
	actions []string
}

// tableAccesses is every DynamoDB permission of the stack: per function
// and table, exactly the actions of the store calls its handlers make
// (lambda/store), nothing else; no Scan, no table-wide reads or writes
// that no call needs. The tables of a function are those of its manifest
// entry (manifest.Function.Tables, which also puts their names in its
// environment): grantTables refuses a row for another table, and a listed
// table without a row.
var tableAccesses = []tableAccess{
	// $connect: PutConnection records the connection.
	{manifest.WebSocketConnect, manifest.Connections, "", []string{putItem}},
	// $disconnect: DeleteConnection forgets it.
	{manifest.WebSocketDisconnect, manifest.Connections, "", []string{deleteItem}},

	// Frames and reply jobs (wshandler, chat; store/replies.go,
	// running.go, settle.go).
	// GetConnection: the user behind every frame.
	{manifest.WebSocketMessage, manifest.Connections, "", []string{getItem}},
	// GetConversation; AcceptMessage puts a new conversation or updates
	// (marks replying) the one it continues; FinishReply and a failed
	// reply update it (clear the mark); ClaimReply checks it still
	// exists.
	{manifest.WebSocketMessage, manifest.Conversations, "", []string{getItem, putItem, updateItem, conditionCheckItem}},
	// GetMessage (resume of a stored reply); AcceptMessage puts the user's
	// and the assistant's message, FinishReply stores the reply;
	// CheckpointReply, FailUnstarted and MarkFailed update it;
	// ListMessagesPage and ListMessages query the history sent to the
	// model.
	{manifest.WebSocketMessage, manifest.Messages, "", []string{getItem, putItem, updateItem, query}},
	// GetPrompt (the saved system prompt); AcceptMessage checks that a
	// sent promptId exists.
	{manifest.WebSocketMessage, manifest.Prompts, "", []string{getItem, conditionCheckItem}},
	// GetReply; AcceptMessage puts the live record; ClaimReply,
	// AddListener, RemoveListeners, RequestStop, ExtendReservation,
	// FinishReply, FailUnstarted and MarkFailed update it; a reply settled
	// after its conversation was deleted deletes it.
	{manifest.WebSocketMessage, manifest.Replies, "", []string{getItem, putItem, updateItem, deleteItem}},
	// The running set and the day's quota counter: read (Running), and
	// updated when a reply is accepted (reserve, join), its reservation
	// extended (ExtendReservation), settled (the real count, the usage
	// row, leave) or lapsed; CountResume counts a user's resume frames.
	{manifest.WebSocketMessage, manifest.Usage, "", []string{getItem, updateItem}},
	// The uploads a message carries (store/uploads.go, replies.go):
	// GetUploads reads them in one BatchGetItem, GetUpload one (GetItem);
	// AcceptMessage attaches each to the conversation in its transaction
	// (a conditional UpdateItem: the user's, ready, in no other
	// conversation) or checks it there (ConditionCheckItem).
	{manifest.WebSocketMessage, manifest.Uploads, "", []string{getItem, updateItem, conditionCheckItem, batchGetItem}},

	// The conversation API (httpapi/conversations.go).
	// GetConversation, RenameConversation (UpdateItem),
	// DeleteConversation (DeleteItem).
	{manifest.ConversationAPI, manifest.Conversations, "", []string{getItem, updateItem, deleteItem}},
	// ListConversations: newest first, from the byUpdatedAt index only.
	{manifest.ConversationAPI, manifest.Conversations, manifest.IndexConversationsByUpdated, []string{query}},
	// ListMessagesPage (Query); DeleteConversation queries the
	// conversation's messages and deletes them in batches.
	{manifest.ConversationAPI, manifest.Messages, "", []string{query, batchWriteItem}},
	// DeleteConversation deletes the messages' reply records in batches
	// (which stops a running reply).
	{manifest.ConversationAPI, manifest.Replies, "", []string{batchWriteItem}},
	// The upload routes (store/uploads.go): CreateUpload puts the pending
	// upload in a transaction with the user's day counter (PutItem; a
	// ConditionCheckItem where a transaction only checks it); GetUpload
	// (GetItem); SettleUpload marks it ready or rejected (UpdateItem);
	// DeleteUpload (DeleteItem); deleting a conversation finds its uploads
	// (Query) and deletes their records in batches (BatchWriteItem).
	{manifest.ConversationAPI, manifest.Uploads, "", []string{getItem, putItem, updateItem, deleteItem, query, batchWriteItem, conditionCheckItem}},
	// CreateUpload's transaction counts the upload on the user's day
	// (a conditional UpdateItem of the day's uploads counter, which
	// refuses the one past MAX_UPLOADS_PER_USER_DAY).
	{manifest.ConversationAPI, manifest.Usage, "", []string{updateItem}},

	// The prompt API (httpapi/prompts.go, store/promptcount.go).
	// GetPrompt; ListPrompts (Query, also to start a user's prompt
	// counter, which is a PutItem); UpdatePrompt; CreatePrompt and
	// DeletePrompt are transactions of a put or a delete of the prompt
	// and an update of the counter, which is read (GetItem) when one is
	// refused.
	{manifest.PromptCRUD, manifest.Prompts, "", []string{getItem, putItem, updateItem, deleteItem, query}},

	// The usage API (httpapi/usage.go): ListUsage (Query) and Today (the
	// quota counter, GetItem).
	{manifest.UsageHandler, manifest.Usage, "", []string{getItem, query}},
}

// newRoles declares one execution role per function, by function name.
// p2-two-websocket-message-two, the one function that reads the secret
// and calls the model, gets the role the old deployment created,
// p2-two-lambda-role-two, with its inline policy SecretsManagerAccess
// (read the one secret). Every other function gets a role of its own
// (name generated by CloudFormation) that cannot read the secret, call
// the model or post to @connections. Each role can:
//   - write to its function's log group only (no logs:CreateLogGroup, no
//     managed AWSLambdaBasicExecutionRole);
//   - use the tables of its function as tableAccesses says;
//   - for the conversation API and the message function only, use the
//     uploads bucket's objects as uploadAccesses says (uploads.go);
//   - write X-Ray segments (added by Tracing ACTIVE where the function is
//     declared).
//
// The message role can in addition invoke its own function (the reply job
// it dispatches to itself), invoke Claude on Bedrock only with
// AI_PROVIDER=bedrock, post to @connections (added where the WebSocket API
// is declared), and send to and consume from the reply jobs' failure
// queue (added by the destination and the event source).
func newRoles(stack awscdk.Stack, s Settings, r *Resources) map[string]awsiam.Role {
	roles := map[string]awsiam.Role{}
	for _, fn := range manifest.Functions {
		var role awsiam.Role
		if fn.Name == manifest.WebSocketMessage.Name {
			role = newMessageRole(stack, r)
		} else {
			role = awsiam.NewRole(stack, jsii.String(constructID(fn.Dir)+"Role"), &awsiam.RoleProps{
				Description: jsii.String("Execution role of " + fn.Name),
				AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
			})
		}
		// Explicit DeletionPolicy, so `cdk import` can adopt the existing
		// role, and so a retained production function keeps its role.
		role.ApplyRemovalPolicy(removalPolicy(s))
		r.LogGroups[fn.Name].GrantWrite(role)
		grantTables(role, fn, r)
		grantUploads(role, fn, r)
		roles[fn.Name] = role
	}
	return roles
}

// grantTables gives role the DynamoDB actions of fn's rows of
// tableAccesses, each on its table's ARN or its index's.
func grantTables(role awsiam.Role, fn manifest.Function, r *Resources) {
	granted := map[string]bool{}
	for _, a := range tableAccesses {
		if a.fn.Name != fn.Name {
			continue
		}
		if !slices.ContainsFunc(fn.Tables, func(t manifest.Table) bool { return t.ID == a.table.ID }) {
			panic(fmt.Sprintf("tableAccesses grants %s on %s, which is not among its manifest tables", fn.Name, a.table.ID))
		}
		arn := *r.Tables[a.table.ID].TableArn()
		if a.index != "" {
			if !slices.ContainsFunc(a.table.Indexes, func(ix manifest.Index) bool { return ix.Name == a.index }) {
				panic(fmt.Sprintf("tableAccesses: table %s has no index %s", a.table.ID, a.index))
			}
			arn += "/index/" + a.index
		}
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Actions:   jsii.Strings(a.actions...),
			Resources: jsii.Strings(arn),
		}))
		granted[a.table.ID] = true
	}
	for _, t := range fn.Tables {
		if !granted[t.ID] {
			panic(fmt.Sprintf("tableAccesses has no row for %s on %s, a table of its manifest entry", fn.Name, t.ID))
		}
	}
}

// newMessageRole declares p2-two-lambda-role-two with what only the
// message function needs.
func newMessageRole(stack awscdk.Stack, r *Resources) awsiam.Role {
	role := awsiam.NewRole(stack, jsii.String("LambdaRole"), &awsiam.RoleProps{
		RoleName:    jsii.String(RoleName),
		Description: jsii.String("Execution role of " + manifest.WebSocketMessage.Name + ", the function that reads the API key and calls Claude"),
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			SecretsPolicyName: awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{
				Statements: &[]awsiam.PolicyStatement{
					awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
						Actions:   jsii.Strings(SecretActions...),
						Resources: jsii.Strings(r.SecretPolicyArn),
					}),
				},
			}),
		},
	})
	// The ARN is built from the fixed name, not from the function: the
	// function depends on the role, so a reference back would be a cycle.
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DispatchReplyJob"),
		Actions:   jsii.Strings("lambda:InvokeFunction"),
		Resources: jsii.Strings(*SelfInvokeArn(stack)),
	}))
	if r.bedrock {
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:     jsii.String("BedrockInvokeClaude"),
			Actions: jsii.Strings(BedrockActions...),
			Resources: jsii.Strings(
				// On-demand models, in any region a cross-region inference
				// profile routes to.
				*stack.FormatArn(&awscdk.ArnComponents{
					Service: jsii.String("bedrock"), Region: jsii.String("*"), Account: jsii.String(""),
					Resource: jsii.String("foundation-model"), ResourceName: jsii.String("anthropic.claude-*"),
				}),
				// Inference profiles (us.anthropic.claude-..., global.anthropic.claude-...).
				*stack.FormatArn(&awscdk.ArnComponents{
					Service: jsii.String("bedrock"), Resource: jsii.String("inference-profile"),
					ResourceName: jsii.String("*anthropic.claude-*"),
				}),
			),
		}))
	}
	return role
}

// SelfInvokeArn is the ARN of p2-two-websocket-message-two in this stack's
// partition, region and account (pseudo parameters, never a literal).
func SelfInvokeArn(stack awscdk.Stack) *string {
	return stack.FormatArn(&awscdk.ArnComponents{
		Service:      jsii.String("lambda"),
		Resource:     jsii.String("function"),
		ResourceName: jsii.String(manifest.WebSocketMessage.Name),
		ArnFormat:    awscdk.ArnFormat_COLON_RESOURCE_NAME,
	})
}

func usesBedrock(s Settings) bool { return s.Model.Provider == config.ProviderBedrock }
