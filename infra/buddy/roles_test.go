package buddy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/p2/buddy/lambda/manifest"
)

// DynamoDB actions, as IAM names them.
const (
	ddbGet                 = "dynamodb:GetItem"
	ddbPut                 = "dynamodb:PutItem"
	ddbUpdate              = "dynamodb:UpdateItem"
	ddbDelete              = "dynamodb:DeleteItem"
	ddbCheck               = "dynamodb:ConditionCheckItem"
	ddbQuery               = "dynamodb:Query"
	ddbBatchWrite          = "dynamodb:BatchWriteItem"
	ddbBatchGet            = "dynamodb:BatchGetItem"
	conversationsByUpdated = "Conversations/index/" + manifest.IndexConversationsByUpdated
)

// sqsSendAndConsume is what the on-failure destination (send) and the event
// source mapping (consume) grant on the reply jobs' failure queue.
var sqsSendAndConsume = []string{
	"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
	"sqs:ReceiveMessage", "sqs:SendMessage",
}

// roleOf is the logical id of the role a function runs with, and that role.
func roleOf(t *testing.T, s *synthesized, function string) (string, map[string]any) {
	t.Helper()
	fn := props(resource(t, s.template, functionsByName(t, s.template)[function]))
	ga, ok := fn["Role"].(map[string]any)["Fn::GetAtt"].([]any)
	if !ok || len(ga) != 2 || ga[1] != "Arn" {
		t.Fatalf("%s: role %v is not a role of the stack", function, fn["Role"])
	}
	id := fmt.Sprint(ga[0])
	return id, resource(t, s.template, id)
}

// TestEachFunctionHasItsOwnLeastPrivilegeRole: one role per function; only
// the message function's is p2-two-lambda-role-two with the secret; each
// role's statements cover exactly its own log group, X-Ray, the DynamoDB
// actions its store calls make on each table of its manifest entry (and
// on an index only where it queries one), and for the message function
// alone the self-invocation, @connections, the failure queue and (with
// AI_PROVIDER=bedrock) Bedrock.
func TestEachFunctionHasItsOwnLeastPrivilegeRole(t *testing.T) {
	cases := []struct {
		name     string
		function string
		// named: the role is p2-two-lambda-role-two with SecretsManagerAccess.
		named bool
		// tables holds the DynamoDB actions by table ID, or by
		// "<table ID>/index/<index>" for those granted on an index.
		tables map[string][]string
		// services are those of its statements besides logs, dynamodb and
		// xray, which every role has.
		services []string
		// uploads are its statements on the uploads bucket (uploads_test.go).
		uploads []s3Grant
	}{
		{
			name:     "$connect only puts its connection",
			function: manifest.WebSocketConnect.Name,
			tables:   map[string][]string{"Connections": {ddbPut}},
		},
		{
			name:     "$disconnect only deletes its connection",
			function: manifest.WebSocketDisconnect.Name,
			tables:   map[string][]string{"Connections": {ddbDelete}},
		},
		{
			name:     "the message function reads the secret, uses each table as its calls need, dispatches, streams and drains its failures",
			function: manifest.WebSocketMessage.Name,
			named:    true,
			tables: map[string][]string{
				"Connections":   {ddbGet},
				"Conversations": {ddbGet, ddbPut, ddbUpdate, ddbCheck},
				"Messages":      {ddbGet, ddbPut, ddbUpdate, ddbQuery},
				"Prompts":       {ddbGet, ddbCheck},
				"Replies":       {ddbGet, ddbPut, ddbUpdate, ddbDelete},
				"Usage":         {ddbGet, ddbUpdate},
				"Uploads":       {ddbGet, ddbUpdate, ddbCheck, ddbBatchGet},
			},
			services: []string{"execute-api", "lambda", "s3", "sqs"},
			uploads:  messageUploadGrants,
		},
		{
			name: "the conversation API reads, renames and deletes conversations, lists from the index, deletes messages and replies in batches, " +
				"creates, checks and deletes uploads and counts them on the day",
			function: manifest.ConversationAPI.Name,
			tables: map[string][]string{
				"Conversations":        {ddbGet, ddbUpdate, ddbDelete},
				conversationsByUpdated: {ddbQuery},
				"Messages":             {ddbQuery, ddbBatchWrite},
				"Replies":              {ddbBatchWrite},
				"Uploads":              {ddbGet, ddbPut, ddbUpdate, ddbDelete, ddbQuery, ddbBatchWrite, ddbCheck},
				"Usage":                {ddbUpdate},
			},
			services: []string{"s3"},
			uploads:  conversationUploadGrants,
		},
		{
			name:     "the prompt API reads, lists, creates, updates and deletes prompts and their counter",
			function: manifest.PromptCRUD.Name,
			tables:   map[string][]string{"Prompts": {ddbGet, ddbPut, ddbUpdate, ddbDelete, ddbQuery}},
		},
		{
			name:     "the usage API only reads usage rows and the quota counter",
			function: manifest.UsageHandler.Name,
			tables:   map[string][]string{"Usage": {ddbGet, ddbQuery}},
		},
	}
	if len(cases) != len(manifest.Functions) {
		t.Fatalf("%d cases for %d functions", len(cases), len(manifest.Functions))
	}
	for _, v := range []string{"dev", "prod", "alt"} {
		s := synth(t, v)
		tableOf := map[string]string{}
		for id, table := range s.res.Tables {
			tableOf["${"+logicalID(s.stack, table)+".Arn}"] = id
		}
		queue := "${" + logicalID(s.stack, s.res.ReplyJobFailures) + ".Arn}"
		uploadObjects := uploadObjectsArn(s)
		wsAPI := logicalID(s.stack, s.res.WebSocketAPI)
		seenRoles := map[string]string{}
		for _, tc := range cases {
			t.Run(v+"/"+tc.name, func(t *testing.T) {
				roleID, role := roleOf(t, s, tc.function)
				if other, ok := seenRoles[roleID]; ok {
					t.Errorf("%s shares its role %s with %s", tc.function, roleID, other)
				}
				seenRoles[roleID] = tc.function
				p := props(role)
				if tc.named {
					equal(t, "role name", p["RoleName"], roleName)
				} else if p["RoleName"] != nil || p["Policies"] != nil {
					t.Errorf("role %s has a name or inline policies: %v %v", roleID, p["RoleName"], p["Policies"])
				}
				equal(t, "trust policy", p["AssumeRolePolicyDocument"], map[string]any{
					"Version": "2012-10-17",
					"Statement": []any{map[string]any{
						"Action": "sts:AssumeRole", "Effect": "Allow",
						"Principal": map[string]any{"Service": "lambda.amazonaws.com"},
					}},
				})
				if p["ManagedPolicyArns"] != nil {
					t.Errorf("managed policies: %v", p["ManagedPolicyArns"])
				}

				ownLogs := "${" + logicalID(s.stack, s.res.LogGroups[tc.function]) + ".Arn}"
				tables := map[string][]string{}
				queues := map[string][]string{}
				var uploads []s3Grant
				seen := map[string]bool{}
				for _, st := range statements(t, s, roleID) {
					actions, res := strs(st["Action"]), strs(st["Resource"])
					conditional := st["Condition"] != nil && strings.HasPrefix(actions[0], "s3:")
					if st["Effect"] != "Allow" || (st["Condition"] != nil && !conditional) || st["NotAction"] != nil || st["NotResource"] != nil {
						t.Errorf("unexpected statement %v", st)
						continue
					}
					for _, a := range actions {
						if strings.Contains(a, "*") {
							t.Errorf("wildcard action %s", a)
						}
					}
					service := strings.Split(actions[0], ":")[0]
					seen[service] = true
					for _, a := range actions {
						if !strings.HasPrefix(a, service+":") {
							t.Errorf("statement mixes services: %v", actions)
						}
					}
					switch service {
					case "logs":
						equal(t, "log actions", map[string]any{"Action": actions, "Resource": res},
							map[string]any{"Action": []string{"logs:CreateLogStream", "logs:PutLogEvents"}, "Resource": []string{ownLogs}})
					case "dynamodb":
						for _, r := range res {
							arn, index, onIndex := strings.Cut(r, "/index/")
							id, ok := tableOf[arn]
							if !ok {
								t.Errorf("dynamodb granted on %s, not a stack table", r)
								continue
							}
							if onIndex {
								id += "/index/" + index
							}
							tables[id] = sortedCopy(append(tables[id], actions...))
						}
					case "sqs":
						for _, r := range res {
							queues[r] = sortedCopy(append(queues[r], actions...))
						}
					case "s3":
						uploads = append(uploads, s3Grant{Actions: sortedCopy(actions), Resources: res, Condition: st["Condition"]})
					case "lambda":
						equal(t, "self-invocation", map[string]any{"Action": actions, "Resource": res},
							map[string]any{"Action": []string{"lambda:InvokeFunction"}, "Resource": []string{selfInvokeArn}})
					case "execute-api":
						equal(t, "@connections", map[string]any{"Action": actions, "Resource": res}, map[string]any{
							"Action":   []string{"execute-api:ManageConnections"},
							"Resource": []string{"arn:aws:execute-api:us-east-1:${AWS::AccountId}:${" + wsAPI + "}/*/*/@connections/*"},
						})
					case "xray":
						equal(t, "X-Ray", map[string]any{"Action": actions, "Resource": res},
							map[string]any{"Action": []string{"xray:PutTelemetryRecords", "xray:PutTraceSegments"}, "Resource": []string{"*"}})
					case "bedrock":
						equal(t, "Bedrock", map[string]any{"Action": actions, "Resource": res}, map[string]any{
							"Action":   []string{"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"},
							"Resource": []string{bedrockModelsArn, bedrockProfileArn},
						})
					default:
						t.Errorf("unexpected statement %v", st)
					}
					if service != "xray" && slices.Contains(res, "*") {
						t.Errorf("%s granted on *", service)
					}
				}

				want := map[string][]string{}
				for id, actions := range tc.tables {
					want[id] = sortedCopy(slicesCompactSorted(actions))
				}
				for id, actions := range tables {
					tables[id] = slicesCompactSorted(actions)
				}
				equal(t, "DynamoDB actions by table", tables, want)
				if tc.named {
					equal(t, "SQS actions by queue", queues, map[string][]string{queue: sqsSendAndConsume})
				}
				var wantUploads []s3Grant
				for _, g := range tc.uploads {
					if g.Resources == nil {
						g.Resources = []string{uploadObjects}
					} else {
						g.Resources = []string{strings.TrimSuffix(uploadObjects, "/uploads/*")}
					}
					wantUploads = append(wantUploads, g)
				}
				equal(t, "statements on the uploads bucket", sortGrants(uploads), sortGrants(wantUploads))
				services := append([]string{"dynamodb", "logs", "xray"}, tc.services...)
				if tc.named && s.settings.Model.Provider == "bedrock" {
					services = append(services, "bedrock")
				}
				equal(t, "services", sortedKeys(seen), sortedCopy(services))
			})
		}
	}
}

// TestNoRoleScansAndTheMessageRoleNeverBatchWrites: in every statement
// of every role of the stack, no dynamodb:Scan (no handler lists a table),
// no action with a wildcard, and in the message role (the one that holds
// the API key and parses untrusted frames) no dynamodb:BatchWriteItem.
func TestNoRoleScansAndTheMessageRoleNeverBatchWrites(t *testing.T) {
	for _, v := range []string{"dev", "prod", "alt"} {
		s := synth(t, v)
		messageRole, _ := roleOf(t, s, messageFunction)
		for roleID := range resources(s.template, "AWS::IAM::Role") {
			for _, st := range statements(t, s, roleID) {
				for _, a := range strs(st["Action"]) {
					switch {
					case strings.Contains(a, "*"):
						t.Errorf("%s: role %s has the wildcard action %s", v, roleID, a)
					case a == "dynamodb:Scan":
						t.Errorf("%s: role %s may scan %v", v, roleID, st["Resource"])
					case a == ddbBatchWrite && roleID == messageRole:
						t.Errorf("%s: the message role may batch-write %v", v, st["Resource"])
					}
				}
			}
		}
	}
}

// TestOnlyTheMessageRoleReadsTheSecret: across the whole template, the one
// statement on Secrets Manager is SecretsManagerAccess of
// p2-two-lambda-role-two, and that role belongs to the message function
// alone.
func TestOnlyTheMessageRoleReadsTheSecret(t *testing.T) {
	for v, wantResource := range map[string]any{"dev": nil, "prod": nil, "alt": adoptedSecretArn} {
		s := synth(t, v)
		if wantResource == nil {
			wantResource = "${" + logicalID(s.stack, s.res.Secret) + "}"
		}
		messageRole, _ := roleOf(t, s, messageFunction)
		var found []string
		var walk func(where string, x any)
		walk = func(where string, x any) {
			switch x := x.(type) {
			case map[string]any:
				for _, key := range []string{"Action", "NotAction"} {
					if x[key] == nil {
						continue
					}
					for _, a := range strs(x[key]) {
						if strings.HasPrefix(a, "secretsmanager:") || a == "*" {
							found = append(found, fmt.Sprintf("%s: %s on %v", where, a, render(x["Resource"])))
						}
					}
				}
				for _, y := range x {
					walk(where, y)
				}
			case []any:
				for _, y := range x {
					walk(where, y)
				}
			}
		}
		for id, r := range s.template["Resources"].(map[string]any) {
			walk(id, r)
		}
		slices.Sort(found)
		want := []string{
			fmt.Sprintf("%s: secretsmanager:DescribeSecret on %v", messageRole, wantResource),
			fmt.Sprintf("%s: secretsmanager:GetSecretValue on %v", messageRole, wantResource),
		}
		equal(t, v+": statements on Secrets Manager", found, want)
		for _, name := range designFunctionNames {
			if id, _ := roleOf(t, s, name); name != messageFunction && id == messageRole {
				t.Errorf("%s: %s runs with the message function's role", v, name)
			}
		}
	}
}

// slicesCompactSorted sorts and drops repeats (a table may be granted in
// two statements).
func slicesCompactSorted(s []string) []string {
	return slices.Compact(sortedCopy(s))
}
