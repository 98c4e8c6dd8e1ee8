package buddy_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/constructs-go/constructs/v10"

	"github.com/p2/buddy/infra/buddy"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/manifest"
)

// The documented defaults of the functions' environment, written out here on purpose: if a default in
// lambda/config drifts from the design, these tests say so.
var designEnv = map[string]string{
	"ANTHROPIC_MODEL_ID":    "claude-opus-4-5-20251101",
	"USE_OPUS_MODEL":        "true",
	"ANTHROPIC_SECRET_NAME": "buddy-v1",
	"USE_ANTHROPIC_API":     "true",
	"AI_PROVIDER":           "anthropic_api",
	"MAX_TOKENS":            "4096",
	"TEMPERATURE":           "0.3",
	"TOP_K":                 "40",
}

const (
	region            = "us-east-1"
	secretName        = "buddy-v1"
	roleName          = "p2-two-lambda-role-two"
	messageFunction   = "p2-two-websocket-message-two"
	selfInvokeArn     = "arn:aws:lambda:us-east-1:${AWS::AccountId}:function:p2-two-websocket-message-two"
	adoptedSecretArn  = "arn:aws:secretsmanager:us-east-1:${AWS::AccountId}:secret:buddy-v1-??????"
	bedrockModelsArn  = "arn:aws:bedrock:*::foundation-model/anthropic.claude-*"
	bedrockProfileArn = "arn:aws:bedrock:us-east-1:${AWS::AccountId}:inference-profile/*anthropic.claude-*"
)

// The defaults of the runtime variables the stack always writes.
var runtimeEnv = map[string]string{
	"ALLOWED_MODELS":                "claude-opus-4-5-20251101,claude-sonnet-4-5-20250929,claude-haiku-4-5-20251001",
	"PROMPT_CACHE":                  "5m",
	"DAILY_TOKEN_LIMIT":             "1000000",
	"MAX_INFLIGHT_REPLIES_PER_USER": "2",
	"ORPHAN_REPLY_GRACE_SECONDS":    "120",
	"RESUMES_PER_MINUTE":            "30",
	"MAX_IMAGE_BYTES":               "3932160",
	"MAX_PDF_BYTES":                 "10485760",
	"MAX_PDF_PAGES":                 "100",
	"MAX_UPLOADS_PER_USER_DAY":      "200",
}

// uploadsBucketFunctions are the functions that may use the uploads
// bucket (DESIGN §9), and so get UPLOADS_BUCKET.
var uploadsBucketFunctions = []string{"p2-two-conversation-api-two", "p2-two-websocket-message-two"}

var designFunctionNames = []string{
	"p2-two-websocket-connect-two", "p2-two-websocket-disconnect-two", "p2-two-websocket-message-two",
	"p2-two-conversation-api-two", "p2-two-prompt-crud-two", "p2-two-usage-handler-two",
}

// functionsByName maps FunctionName to logical id.
func functionsByName(t *testing.T, tmpl map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for id, r := range resources(tmpl, "AWS::Lambda::Function") {
		out[fmt.Sprint(props(r)["FunctionName"])] = id
	}
	return out
}

func TestStackNameRegionAndNoAccountID(t *testing.T) {
	accountID := regexp.MustCompile(`\b\d{12}\b`)
	for _, v := range []string{"dev", "prod", "alt"} {
		s := synth(t, v)
		if got, want := *s.stack.StackName(), "Buddy-"+s.settings.Stage; got != want {
			t.Errorf("%s: stack name %s, want %s", v, got, want)
		}
		if got := *s.stack.Region(); got != region {
			t.Errorf("%s: region %s, want %s", v, got, region)
		}
		if m := accountID.Find(s.raw); m != nil {
			t.Errorf("%s: the template holds an account id literal %s", v, m)
		}
	}
}

// TestMessageReservedConcurrency: off unless messageReservedConcurrency
// sets it, and then on the message function only.
func TestMessageReservedConcurrency(t *testing.T) {
	for v, want := range map[string]any{"dev": nil, "prod": nil, "alt": 200} {
		s := synth(t, v)
		for name, id := range functionsByName(t, s.template) {
			var w any
			if name == messageFunction {
				w = want
			}
			equal(t, v+": reserved concurrency of "+name, props(resource(t, s.template, id))["ReservedConcurrentExecutions"], w)
		}
	}
}

func TestFunctions(t *testing.T) {
	for _, v := range []string{"dev", "prod"} {
		s := synth(t, v)
		byName := functionsByName(t, s.template)
		if got := sortedKeys(byName); !slices.Equal(got, sortedCopy(designFunctionNames)) {
			t.Errorf("%s: functions %v, want %v", v, got, designFunctionNames)
		}
		for _, fn := range manifest.Functions {
			id, ok := byName[fn.Name]
			if !ok {
				continue
			}
			p := props(resource(t, s.template, id))
			want := map[string]any{
				"Runtime":       "provided.al2023",
				"Architectures": []string{"arm64"},
				"Handler":       "bootstrap",
				"MemorySize":    fn.MemoryMB,
				"Timeout":       fn.TimeoutSeconds,
				"TracingConfig": map[string]any{"Mode": "Active"},
				"LoggingConfig": map[string]any{
					"LogFormat": "JSON",
					"LogGroup":  map[string]any{"Ref": logicalID(s.stack, s.res.LogGroups[fn.Name])},
				},
				"Role": map[string]any{"Fn::GetAtt": []string{logicalID(s.stack, s.res.Roles[fn.Name]), "Arn"}},
			}
			for k, w := range want {
				equal(t, fmt.Sprintf("%s %s %s", v, fn.Name, k), p[k], w)
			}
			if _, ok := p["Code"].(map[string]any)["S3Key"]; !ok {
				t.Errorf("%s %s: code is not an asset: %v", v, fn.Name, p["Code"])
			}
		}
	}
	// The sizing decisions themselves (lambda/manifest explains them).
	for _, tc := range []struct {
		fn              manifest.Function
		memoryMB, limit int
	}{
		{manifest.WebSocketMessage, 512, 300},
		{manifest.WebSocketConnect, 128, 10},
	} {
		if tc.fn.MemoryMB != tc.memoryMB || tc.fn.TimeoutSeconds != tc.limit {
			t.Errorf("sizing of %s: %d MB, %d s; want %d MB, %d s", tc.fn.Name, tc.fn.MemoryMB, tc.fn.TimeoutSeconds, tc.memoryMB, tc.limit)
		}
	}
}

// expectedEnv is a function's whole environment as the template renders
// it; vars holds the model and runtime variables that differ from the
// runtime defaults.
func expectedEnv(t *testing.T, s *synthesized, fn manifest.Function, vars map[string]string) map[string]any {
	env := map[string]any{}
	for k, v := range runtimeEnv {
		env[k] = v
	}
	for k, v := range vars {
		env[k] = v
	}
	for _, table := range fn.Tables {
		env[table.EnvVar] = "${" + logicalID(s.stack, s.res.Tables[table.ID]) + "}"
	}
	if slices.Contains(uploadsBucketFunctions, fn.Name) {
		env["UPLOADS_BUCKET"] = "${" + logicalID(s.stack, s.res.UploadsBucket) + "}"
	}
	if fn.Name == manifest.WebSocketConnect.Name {
		if s.res.UserPool != nil {
			env["JWT_ISSUER"] = "https://cognito-idp.us-east-1.amazonaws.com/${" + logicalID(s.stack, s.res.UserPool) + "}"
			env["JWT_AUDIENCE"] = "${" + logicalID(s.stack, s.res.UserPoolClient) + "}"
		} else {
			env["JWT_ISSUER"] = s.settings.JWTIssuer
			env["JWT_AUDIENCE"] = s.settings.JWTAudience
		}
	}
	return env
}

func TestEnvironment(t *testing.T) {
	alt := map[string]string{}
	for k, v := range designEnv {
		alt[k] = v
	}
	alt["AI_PROVIDER"] = "bedrock"
	alt["USE_ANTHROPIC_API"] = "false" // derived from AI_PROVIDER
	alt["TOP_P"] = "0.9"
	delete(alt, "TEMPERATURE") // TOP_P given: TEMPERATURE's default is dropped
	alt["MAX_INFLIGHT_REPLIES_PER_USER"] = "3"
	alt["ORPHAN_REPLY_GRACE_SECONDS"] = "300"
	alt["RESUMES_PER_MINUTE"] = "60"
	alt["MAX_PDF_PAGES"] = "50"
	alt["MAX_UPLOADS_PER_USER_DAY"] = "20"
	for v, model := range map[string]map[string]string{"dev": designEnv, "prod": designEnv, "alt": alt} {
		s := synth(t, v)
		byName := functionsByName(t, s.template)
		for _, fn := range manifest.Functions {
			p := props(resource(t, s.template, byName[fn.Name]))
			got := render(p["Environment"].(map[string]any)["Variables"])
			equal(t, fmt.Sprintf("%s: environment of %s", v, fn.Name), got, expectedEnv(t, s, fn, model))

			// The runtime accepts it: its own validation and the
			// variables each function requires (app.Required).
			vars := got.(map[string]any)
			get := func(k string) string {
				if x, ok := vars[k]; ok {
					if str := fmt.Sprint(x); strings.Contains(str, "${") {
						return "https://resolved.example.com/" + k // a deploy-time value
					}
					return fmt.Sprint(x)
				}
				return ""
			}
			if _, err := config.ParseRuntime(get); err != nil {
				t.Errorf("%s: the runtime rejects the environment of %s: %v", v, fn.Name, err)
			}
			required := []string{}
			for _, table := range fn.Tables {
				required = append(required, table.EnvVar)
			}
			if fn.Name == manifest.WebSocketConnect.Name {
				required = append(required, config.JWTIssuer, config.JWTAudience)
			}
			if slices.Contains(uploadsBucketFunctions, fn.Name) {
				required = append(required, config.UploadsBucket)
			}
			if err := config.Require(get, required...); err != nil {
				t.Errorf("%s: %s lacks %v", v, fn.Name, err)
			}
		}
	}
}

func TestLogGroups(t *testing.T) {
	for v, want := range map[string]struct {
		days   int
		policy string
	}{"dev": {30, "Delete"}, "prod": {365, "Retain"}} {
		s := synth(t, v)
		byName := map[string]map[string]any{}
		for _, r := range resources(s.template, "AWS::Logs::LogGroup") {
			byName[fmt.Sprint(props(r)["LogGroupName"])] = r
		}
		for _, name := range designFunctionNames {
			r, ok := byName["/aws/lambda/"+name]
			if !ok {
				t.Errorf("%s: no log group /aws/lambda/%s", v, name)
				continue
			}
			equal(t, v+" retention of /aws/lambda/"+name, props(r)["RetentionInDays"], want.days)
			equal(t, v+" deletion policy of /aws/lambda/"+name, r["DeletionPolicy"], want.policy)
		}
		for _, name := range []string{"/aws/apigateway/buddy-" + v + "-websocket", "/aws/apigateway/buddy-" + v + "-http"} {
			if r, ok := byName[name]; !ok {
				t.Errorf("%s: no access log group %s", v, name)
			} else {
				equal(t, v+" retention of "+name, props(r)["RetentionInDays"], want.days)
			}
		}
		if n := len(resources(s.template, "Custom::LogRetention")); n != 0 {
			t.Errorf("%s: %d legacy log-retention custom resources", v, n)
		}
	}
}

func TestSecretsManagerAccessPolicy(t *testing.T) {
	for v, wantResource := range map[string]any{"dev": nil, "prod": nil, "alt": adoptedSecretArn} {
		s := synth(t, v)
		var role map[string]any
		for _, r := range resources(s.template, "AWS::IAM::Role") {
			if props(r)["RoleName"] == roleName {
				role = props(r)
			}
		}
		if role == nil {
			t.Fatalf("%s: no role %s", v, roleName)
		}
		if wantResource == nil {
			wantResource = map[string]any{"Ref": logicalID(s.stack, s.res.Secret)}
		}
		equal(t, v+": inline policies of "+roleName, render(role["Policies"]), []any{map[string]any{
			"PolicyName": "SecretsManagerAccess",
			"PolicyDocument": map[string]any{
				"Version": "2012-10-17",
				"Statement": []any{map[string]any{
					"Effect":   "Allow",
					"Action":   []string{"secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"},
					"Resource": render(wantResource),
				}},
			},
		}})
		equal(t, v+": trust policy", role["AssumeRolePolicyDocument"], map[string]any{
			"Version": "2012-10-17",
			"Statement": []any{map[string]any{
				"Action": "sts:AssumeRole", "Effect": "Allow",
				"Principal": map[string]any{"Service": "lambda.amazonaws.com"},
			}},
		})
		if _, ok := role["ManagedPolicyArns"]; ok {
			t.Errorf("%s: %s has managed policies: %v", v, roleName, role["ManagedPolicyArns"])
		}
	}
}

// statements are the rendered statements of a role's policies other than
// its inline ones (the default policy CDK's grants write to).
func statements(t *testing.T, s *synthesized, roleID string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for id, r := range resources(s.template, "AWS::IAM::Policy") {
		p := props(r)
		if !slices.ContainsFunc(list(p["Roles"]), func(x any) bool { return render(x) == "${"+roleID+"}" }) {
			continue
		}
		for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			st := render(st).(map[string]any)
			st["policy"] = id
			out = append(out, st)
		}
	}
	return out
}

func TestSecret(t *testing.T) {
	for _, v := range []string{"dev", "prod"} {
		s := synth(t, v)
		secrets := resources(s.template, "AWS::SecretsManager::Secret")
		if len(secrets) != 1 {
			t.Fatalf("%s: %d secrets", v, len(secrets))
		}
		for _, r := range secrets {
			p := props(r)
			equal(t, v+": secret name", p["Name"], secretName)
			if _, ok := p["SecretString"]; ok {
				t.Errorf("%s: the template holds a secret value", v)
			}
			gen := p["GenerateSecretString"].(map[string]any)
			equal(t, v+": secret template", gen["SecretStringTemplate"], `{"api_key":"`+buddy.SecretPlaceholder+`"}`)
			equal(t, v+": secret retained", r["DeletionPolicy"], "Retain")
		}
		if strings.Contains(string(s.raw), `"sk-ant`) {
			t.Errorf("%s: the template holds an API key", v)
		}
		out := s.template["Outputs"].(map[string]any)["SecretArn"].(map[string]any)["Value"]
		equal(t, v+": SecretArn output", out, map[string]any{"Ref": logicalID(s.stack, s.res.Secret)})
	}
	if n := len(resources(synth(t, "alt").template, "AWS::SecretsManager::Secret")); n != 0 {
		t.Errorf("adoptSecret=true still declares %d secrets", n)
	}
}

func TestTables(t *testing.T) {
	for v, prod := range map[string]bool{"dev": false, "prod": true} {
		s := synth(t, v)
		if n := len(resources(s.template, "AWS::DynamoDB::Table")); n != len(manifest.All) {
			t.Errorf("%s: %d tables, want %d", v, n, len(manifest.All))
		}
		for _, table := range manifest.All {
			r := resource(t, s.template, logicalID(s.stack, s.res.Tables[table.ID]))
			p := props(r)
			keys := []any{map[string]any{"AttributeName": table.PartitionKey.Name, "KeyType": "HASH"}}
			if table.SortKey != nil {
				keys = append(keys, map[string]any{"AttributeName": table.SortKey.Name, "KeyType": "RANGE"})
			}
			equal(t, v+" "+table.ID+" keys", p["KeySchema"], keys)
			equal(t, v+" "+table.ID+" billing", p["BillingMode"], "PAY_PER_REQUEST")
			equal(t, v+" "+table.ID+" PITR", p["PointInTimeRecoverySpecification"], map[string]any{"PointInTimeRecoveryEnabled": true})
			equal(t, v+" "+table.ID+" encryption", p["SSESpecification"], map[string]any{"SSEEnabled": true})
			if table.TTLAttribute != "" {
				equal(t, v+" "+table.ID+" TTL", p["TimeToLiveSpecification"], map[string]any{"AttributeName": table.TTLAttribute, "Enabled": true})
			} else if _, ok := p["TimeToLiveSpecification"]; ok {
				t.Errorf("%s %s: unexpected TTL", v, table.ID)
			}
			var gsis []string
			for _, g := range list(p["GlobalSecondaryIndexes"]) {
				if g != nil {
					gsis = append(gsis, fmt.Sprint(g.(map[string]any)["IndexName"]))
				}
			}
			var want []string
			for _, ix := range table.Indexes {
				want = append(want, ix.Name)
			}
			equal(t, v+" "+table.ID+" indexes", gsis, want)
			policy := map[bool]string{true: "Retain", false: "Delete"}[prod]
			equal(t, v+" "+table.ID+" deletion policy", r["DeletionPolicy"], policy)
			equal(t, v+" "+table.ID+" replace policy", r["UpdateReplacePolicy"], policy)
			equal(t, v+" "+table.ID+" deletion protection", p["DeletionProtectionEnabled"], prod)
		}
	}
}

func TestWebSocketAPI(t *testing.T) {
	s := synth(t, "dev")
	apiID := logicalID(s.stack, s.res.WebSocketAPI)
	api := props(resource(t, s.template, apiID))
	equal(t, "protocol", api["ProtocolType"], "WEBSOCKET")
	equal(t, "route selection", api["RouteSelectionExpression"], "$request.body.action")
	byName := functionsByName(t, s.template)

	routes := map[string]map[string]any{}
	for _, r := range resources(s.template, "AWS::ApiGatewayV2::Route") {
		if p := props(r); p["ApiId"].(map[string]any)["Ref"] == apiID {
			routes[fmt.Sprint(p["RouteKey"])] = p
		}
	}
	var want []string
	for _, route := range manifest.WebSocketRoutes {
		want = append(want, route.RouteKey)
		p, ok := routes[route.RouteKey]
		if !ok {
			t.Errorf("no WebSocket route %s", route.RouteKey)
			continue
		}
		integ := strings.TrimPrefix(fmt.Sprint(render(p["Target"])), "integrations/")
		uri := fmt.Sprint(render(props(resource(t, s.template, strings.Trim(integ, "${}")))["IntegrationUri"]))
		if !strings.Contains(uri, "${"+byName[route.Function.Name]+".Arn}") {
			t.Errorf("route %s does not invoke %s: %s", route.RouteKey, route.Function.Name, uri)
		}
	}
	equal(t, "WebSocket routes", sortedKeys(routes), sortedCopy(want))

	stage := props(resource(t, s.template, logicalID(s.stack, s.res.WebSocketStage)))
	equal(t, "stage name", stage["StageName"], "dev")
	equal(t, "stage throttle", stage["DefaultRouteSettings"], map[string]any{"ThrottlingBurstLimit": 20, "ThrottlingRateLimit": 10})
	if _, ok := stage["AccessLogSettings"].(map[string]any)["DestinationArn"]; !ok {
		t.Errorf("WebSocket stage has no access logs")
	}
	out := render(s.template["Outputs"].(map[string]any)["WebSocketUrl"].(map[string]any)["Value"])
	equal(t, "WebSocketUrl", out, "wss://${"+apiID+"}.execute-api.us-east-1.${AWS::URLSuffix}/dev")

	if p := props(resource(t, synth(t, "prod").template, logicalID(synth(t, "prod").stack, synth(t, "prod").res.WebSocketStage))); p["StageName"] != "prod" {
		t.Errorf("prod stage name %v", p["StageName"])
	}
}

func TestHTTPAPI(t *testing.T) {
	for _, v := range []string{"dev", "alt"} {
		s := synth(t, v)
		apiID := logicalID(s.stack, s.res.HTTPAPI)
		equal(t, v+" protocol", props(resource(t, s.template, apiID))["ProtocolType"], "HTTP")
		byName := functionsByName(t, s.template)
		authorizers := resources(s.template, "AWS::ApiGatewayV2::Authorizer")
		if len(authorizers) != 1 {
			t.Fatalf("%s: %d authorizers", v, len(authorizers))
		}
		var authID string
		for id, a := range authorizers {
			authID = id
			p := render(props(a)).(map[string]any)
			equal(t, v+" authorizer type", p["AuthorizerType"], "JWT")
			equal(t, v+" authorizer identity", p["IdentitySource"], []string{"$request.header.Authorization"})
			want := map[string]any{"Issuer": s.settings.JWTIssuer, "Audience": []string{s.settings.JWTAudience}}
			if s.res.UserPool != nil {
				want = map[string]any{
					"Issuer":   "https://cognito-idp.us-east-1.amazonaws.com/${" + logicalID(s.stack, s.res.UserPool) + "}",
					"Audience": []string{"${" + logicalID(s.stack, s.res.UserPoolClient) + "}"},
				}
			}
			equal(t, v+" JWT configuration", p["JwtConfiguration"], want)
		}
		routes := map[string]map[string]any{}
		for _, r := range resources(s.template, "AWS::ApiGatewayV2::Route") {
			if p := props(r); p["ApiId"].(map[string]any)["Ref"] == apiID {
				routes[fmt.Sprint(p["RouteKey"])] = p
			}
		}
		var want []string
		for _, route := range manifest.HTTPRoutes {
			want = append(want, route.RouteKey)
			p, ok := routes[route.RouteKey]
			if !ok {
				continue
			}
			equal(t, v+" "+route.RouteKey+" authorization", map[string]any{"AuthorizationType": p["AuthorizationType"], "AuthorizerId": p["AuthorizerId"]},
				map[string]any{"AuthorizationType": "JWT", "AuthorizerId": map[string]any{"Ref": authID}})
			integ := strings.Trim(strings.TrimPrefix(fmt.Sprint(render(p["Target"])), "integrations/"), "${}")
			uri := fmt.Sprint(render(props(resource(t, s.template, integ))["IntegrationUri"]))
			if uri != "${"+byName[route.Function.Name]+".Arn}" {
				t.Errorf("%s: route %s integrates %s, want %s", v, route.RouteKey, uri, route.Function.Name)
			}
		}
		equal(t, v+" HTTP routes", sortedKeys(routes), sortedCopy(want))
		stage := props(resource(t, s.template, logicalID(s.stack, s.res.HTTPStage)))
		equal(t, v+" HTTP stage", stage["StageName"], "$default")
		equal(t, v+" HTTP throttle", stage["DefaultRouteSettings"], map[string]any{"ThrottlingBurstLimit": 20, "ThrottlingRateLimit": 10})
		if _, ok := stage["AccessLogSettings"]; !ok {
			t.Errorf("%s: HTTP stage has no access logs", v)
		}
		cors := props(resource(t, s.template, apiID))["CorsConfiguration"].(map[string]any)
		equal(t, v+" CORS headers", cors["AllowHeaders"], []string{"authorization", "content-type"})
		// dev answers the local chat page (make dev); prod only the origins
		// it was given.
		wantOrigins := []string{"http://127.0.0.1:8787", "http://localhost:8787"}
		if s.settings.Prod {
			wantOrigins = []string{prodOrigin}
		}
		equal(t, v+" CORS origins", cors["AllowOrigins"], wantOrigins)
	}
}

func TestIssuer(t *testing.T) {
	dev, alt := synth(t, "dev"), synth(t, "alt")
	pools := resources(dev.template, "AWS::Cognito::UserPool")
	clients := resources(dev.template, "AWS::Cognito::UserPoolClient")
	if len(pools) != 1 || len(clients) != 1 {
		t.Fatalf("dev: %d user pools, %d clients", len(pools), len(clients))
	}
	for _, c := range clients {
		equal(t, "client secret", props(c)["GenerateSecret"], false)
		// SRP for the browser, the admin flow (IAM credentials) for an
		// operator's CLI; never a plain password flow.
		equal(t, "auth flows", props(c)["ExplicitAuthFlows"], []any{"ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"})
	}
	for _, typ := range []string{"AWS::Cognito::UserPool", "AWS::Cognito::UserPoolClient"} {
		if n := len(resources(alt.template, typ)); n != 0 {
			t.Errorf("external issuer: %d %s", n, typ)
		}
	}
	for v, want := range map[string][]string{
		"dev": {"AlarmTopicArn", "HttpUrl", "JwtAudience", "JwtIssuer", "SecretArn", "SecretName", "UploadsBucketName", "UserPoolClientId", "UserPoolId", "WebSocketUrl"},
		"alt": {"AlarmTopicArn", "HttpUrl", "JwtAudience", "JwtIssuer", "SecretArn", "SecretName", "UploadsBucketName", "WebSocketUrl"},
	} {
		equal(t, v+" outputs", sortedKeys(synth(t, v).template["Outputs"].(map[string]any)), want)
	}
	equal(t, "alt JwtIssuer output", alt.template["Outputs"].(map[string]any)["JwtIssuer"].(map[string]any)["Value"], "https://login.example.com/")
	equal(t, "alt SecretArn output", render(alt.template["Outputs"].(map[string]any)["SecretArn"].(map[string]any)["Value"]),
		strings.TrimSuffix(adoptedSecretArn, "-??????"))
}

func TestReplyJobInvokeConfig(t *testing.T) {
	s := synth(t, "dev")
	configs := resources(s.template, "AWS::Lambda::EventInvokeConfig")
	if len(configs) != 1 {
		t.Fatalf("%d async invoke configs, want 1 (the reply job's)", len(configs))
	}
	for _, c := range configs {
		equal(t, "async invoke config", props(c), map[string]any{
			"FunctionName":             map[string]any{"Ref": functionsByName(t, s.template)[messageFunction]},
			"Qualifier":                "$LATEST",
			"MaximumRetryAttempts":     0,
			"MaximumEventAgeInSeconds": 120,
			"DestinationConfig": map[string]any{"OnFailure": map[string]any{
				"Destination": map[string]any{"Fn::GetAtt": []string{logicalID(s.stack, s.res.ReplyJobFailures), "Arn"}},
			}},
		})
	}
}

func TestAlarms(t *testing.T) {
	s := synth(t, "dev")
	byName := functionsByName(t, s.template)
	topic := map[string]any{"Ref": logicalID(s.stack, s.res.AlarmTopic)}
	perFunction := map[string][]string{}
	queues := map[string]any{}
	emf := map[string]any{}
	tables := map[string]any{}
	var rate map[string]any
	for _, a := range resources(s.template, "AWS::CloudWatch::Alarm") {
		p := props(a)
		name := fmt.Sprint(p["AlarmName"])
		equal(t, name+" actions", p["AlarmActions"], []any{topic})
		switch {
		case p["Namespace"] == "AWS/Lambda":
			fn := p["Dimensions"].([]any)[0].(map[string]any)["Value"].(map[string]any)["Ref"].(string)
			perFunction[fn] = append(perFunction[fn], fmt.Sprint(p["MetricName"]))
			equal(t, "period", p["Period"], 300)
		case p["Namespace"] == "AWS/SQS":
			queues[name] = map[string]any{
				"queue":  render(p["Dimensions"]),
				"metric": p["MetricName"], "stat": p["Statistic"], "period": p["Period"],
				"threshold": p["Threshold"], "comparison": p["ComparisonOperator"], "missing": p["TreatMissingData"],
			}
		case p["Namespace"] == manifest.MetricNamespace:
			emf[name] = map[string]any{
				"metric": p["MetricName"], "dims": p["Dimensions"], "stat": p["Statistic"], "period": p["Period"],
				"threshold": p["Threshold"], "comparison": p["ComparisonOperator"], "missing": p["TreatMissingData"],
			}
		case name == "buddy-dev-model-error-rate":
			rate = p
		default:
			tables[name] = tableAlarm(t, name, p)
		}
	}
	// Both EMF metrics of the runtime, without dimensions: any internal
	// error; conflicts only by the fifty, since each one is retried.
	emfAlarm := func(metric string, threshold int) map[string]any {
		return map[string]any{
			"metric": metric, "dims": nil, "stat": "Sum", "period": 300,
			"threshold": threshold, "comparison": "GreaterThanOrEqualToThreshold", "missing": "notBreaching",
		}
	}
	equal(t, "EMF alarms", emf, map[string]any{
		"buddy-dev-internal-errors":       emfAlarm("InternalErrors", 1),
		"buddy-dev-transaction-conflicts": emfAlarm("TransactionConflicts", 50),
	})
	// Any throttled request and any system error of each table, summed
	// over the operations the functions' calls on it can be.
	wantTables := map[string]any{}
	for id, ops := range map[string][]string{
		"Connections":   {"GetItem", "PutItem", "DeleteItem", "TransactWriteItems"},
		"Conversations": {"GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"},
		"Messages":      {"GetItem", "Query", "PutItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems"},
		"Prompts":       {"GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"},
		"Replies":       {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"},
		"Usage":         {"GetItem", "Query", "UpdateItem", "TransactWriteItems"},
		"Uploads":       {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"},
	} {
		table := "${" + logicalID(s.stack, s.res.Tables[id]) + "}"
		for metric, suffix := range map[string]string{"ThrottledRequests": "throttles", "SystemErrors": "system-errors"} {
			wantTables["buddy-dev-"+strings.ToLower(id)+"-table-"+suffix] = map[string]any{
				"table": table, "metric": metric, "operations": ops,
				"threshold": 1, "comparison": "GreaterThanOrEqualToThreshold", "missing": "notBreaching",
			}
		}
	}
	equal(t, "table alarms", tables, wantTables)
	queueAlarm := func(q any, metric, stat string) map[string]any {
		return map[string]any{
			"queue":  []any{map[string]any{"Name": "QueueName", "Value": "${" + logicalID(s.stack, q.(constructs.IConstruct)) + ".QueueName}"}},
			"metric": metric, "stat": stat, "period": 300,
			"threshold": 1, "comparison": "GreaterThanOrEqualToThreshold", "missing": "notBreaching",
		}
	}
	// The mapping drains the failure queue at once: the alarm counts what
	// was sent to it. Nothing drains the unhandled queue.
	equal(t, "reply job failure alarms", queues, map[string]any{
		"buddy-dev-reply-job-failures":           queueAlarm(s.res.ReplyJobFailures, "NumberOfMessagesSent", "Sum"),
		"buddy-dev-reply-job-failures-unhandled": queueAlarm(s.res.UnhandledReplyJobFailures, "ApproximateNumberOfMessagesVisible", "Maximum"),
	})
	for _, name := range designFunctionNames {
		equal(t, name+" alarms", sortedCopy(perFunction[byName[name]]), []string{"Errors", "Throttles"})
	}
	if rate == nil {
		t.Fatal("no model error-rate alarm")
	}
	metrics := rate["Metrics"].([]any)
	var expr string
	stats := map[string]any{}
	for _, m := range metrics {
		m := m.(map[string]any)
		if e, ok := m["Expression"]; ok {
			expr = fmt.Sprint(e)
			continue
		}
		ms := m["MetricStat"].(map[string]any)
		metric := ms["Metric"].(map[string]any)
		stats[fmt.Sprint(m["Id"])] = map[string]any{"ns": metric["Namespace"], "name": metric["MetricName"], "dims": metric["Dimensions"], "period": ms["Period"], "stat": ms["Stat"]}
	}
	equal(t, "model error rate expression", expr, buddy.ModelErrorRateExpression)
	equal(t, "model error rate metrics", stats, map[string]any{
		"requests": map[string]any{"ns": manifest.MetricNamespace, "name": manifest.MetricModelRequests, "dims": nil, "period": 300, "stat": "Sum"},
		"errors":   map[string]any{"ns": manifest.MetricNamespace, "name": manifest.MetricModelErrors, "dims": nil, "period": 300, "stat": "Sum"},
	})
}

// tableAlarm reads an alarm on a sum of one DynamoDB metric of one table
// over operations: each operation's series (Sum, 5 minutes, dimensions
// TableName and Operation, not returned) filled with 0, then added, in
// the order of the operations it returns.
func tableAlarm(t *testing.T, name string, p map[string]any) map[string]any {
	t.Helper()
	var expr string
	var ops []string
	metric, table := "", ""
	queries, ok := p["Metrics"].([]any)
	if !ok {
		t.Errorf("unexpected alarm %s: %v", name, p)
		return nil
	}
	for _, m := range queries {
		m := render(m).(map[string]any)
		if e, ok := m["Expression"]; ok {
			expr = fmt.Sprint(e)
			continue
		}
		ms := m["MetricStat"].(map[string]any)
		met := ms["Metric"].(map[string]any)
		dims := map[string]any{}
		for _, d := range met["Dimensions"].([]any) {
			d := d.(map[string]any)
			dims[fmt.Sprint(d["Name"])] = d["Value"]
		}
		op := fmt.Sprint(dims["Operation"])
		equal(t, name+" "+op, map[string]any{"ns": met["Namespace"], "stat": ms["Stat"], "period": ms["Period"], "return": m["ReturnData"],
			"id": m["Id"], "dims": len(dims)},
			map[string]any{"ns": "AWS/DynamoDB", "stat": "Sum", "period": 300, "return": false,
				"id": strings.ToLower(op[:1]) + op[1:], "dims": 2})
		if metric != "" && (met["MetricName"] != metric || dims["TableName"] != table) {
			t.Errorf("%s sums %v of %v with %s of %s", name, met["MetricName"], dims["TableName"], metric, table)
		}
		metric, table = fmt.Sprint(met["MetricName"]), fmt.Sprint(dims["TableName"])
		ops = append(ops, op)
	}
	var terms []string
	for _, term := range strings.Split(expr, " + ") {
		id, ok := strings.CutPrefix(term, "FILL(")
		id, ok2 := strings.CutSuffix(id, ", 0)")
		if !ok || !ok2 {
			t.Errorf("%s: %q is not a sum of series filled with 0", name, expr)
			return nil
		}
		terms = append(terms, strings.ToUpper(id[:1])+id[1:])
	}
	if !slices.Equal(sortedCopy(terms), sortedCopy(ops)) {
		t.Errorf("%s: expression %q does not add exactly its series %v", name, expr, ops)
	}
	return map[string]any{
		"table": table, "metric": metric, "operations": terms,
		"threshold": p["Threshold"], "comparison": p["ComparisonOperator"], "missing": p["TreatMissingData"],
	}
}

// The role, the six functions and their log groups already exist under
// these names in the account; CloudFormation imports a resource only when
// the template gives it a DeletionPolicy (README: adopting them).
func TestExistingNamedResourcesCanBeImported(t *testing.T) {
	for stage, want := range map[string]string{"dev": "Delete", "prod": "Retain"} {
		tmpl := synth(t, stage).template
		named := map[string]string{}
		for id, r := range resources(tmpl, "AWS::Lambda::Function") {
			named[id] = fmt.Sprint(props(r)["FunctionName"])
		}
		for id, r := range resources(tmpl, "AWS::IAM::Role") {
			if props(r)["RoleName"] == buddy.RoleName {
				named[id] = buddy.RoleName
			}
		}
		if len(named) != 7 {
			t.Fatalf("%s: %d named functions and roles, want 7", stage, len(named))
		}
		for id, name := range named {
			r := tmpl["Resources"].(map[string]any)[id].(map[string]any)
			equal(t, stage+" DeletionPolicy of "+name, r["DeletionPolicy"], want)
		}
		for id, r := range resources(tmpl, "AWS::Logs::LogGroup") {
			if name := fmt.Sprint(props(r)["LogGroupName"]); strings.HasPrefix(name, "/aws/lambda/") && r["DeletionPolicy"] == nil {
				t.Errorf("%s: log group %s (%s) has no DeletionPolicy", stage, name, id)
			}
		}
	}
}
