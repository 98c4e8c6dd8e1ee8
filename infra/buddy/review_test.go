package buddy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The review summary's section headings, in the order a reviewer reads them
// (infra/scripts/review.mjs).
const (
	secStateful  = "Stateful resources"
	secIAM       = "IAM statements"
	secEnv       = "Function environment"
	secInventory = "Functions, routes, tables, buckets, alarms added or removed"
	secCLI       = "Full diff (cdk diff)"
)

var none = []string{"None."}

// reviewDoc is a review.md split into its parts; blank lines are dropped.
type reviewDoc struct {
	title    string
	preamble []string // between the title and the first section: the gate
	headings []string
	sections map[string][]string
}

func parseReview(t *testing.T, md string) reviewDoc {
	t.Helper()
	doc := reviewDoc{sections: map[string][]string{}}
	cur := ""
	for i, line := range strings.Split(md, "\n") {
		switch {
		case i == 0:
			title, ok := strings.CutPrefix(line, "## ")
			if !ok {
				t.Fatalf("review.md starts with %q, not a ## title", line)
			}
			doc.title = title
		case strings.HasPrefix(line, "### "):
			cur = strings.TrimPrefix(line, "### ")
			doc.headings = append(doc.headings, cur)
		case strings.TrimSpace(line) == "":
		case cur == "":
			doc.preamble = append(doc.preamble, line)
		default:
			doc.sections[cur] = append(doc.sections[cur], line)
		}
	}
	return doc
}

// reviewScript is infra/scripts/review.mjs; the test needs the pinned
// @aws-cdk/cloudformation-diff that `make tools` installs.
func reviewScript(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not on PATH: the review summary runs on Node.js")
	}
	pkg := filepath.Join(root, "infra", "node_modules", "@aws-cdk", "cloudformation-diff", "package.json")
	if _, err := os.Stat(pkg); err != nil {
		t.Fatalf("@aws-cdk/cloudformation-diff is not installed (%v): run make tools", err)
	}
	return filepath.Join(root, "infra", "scripts", "review.mjs")
}

// copyTemplate is a deep copy of a template, for a fixture to edit.
func copyTemplate(t *testing.T, tmpl map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// onlyID is the logical id of the one resource of typ whose id starts with
// prefix (the construct id; the hash CDK appends may change).
func onlyID(t *testing.T, tmpl map[string]any, typ, prefix string) string {
	t.Helper()
	var ids []string
	for id := range resources(tmpl, typ) {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("want one %s named %s*, found %v", typ, prefix, ids)
	}
	return ids[0]
}

// TestReviewSummaryAndGate runs the review of pull-request-like changes to
// the dev stack: template pairs synthesized from real context changes and
// fixtures edited from the dev template. Each case checks the exit status
// (the gate) and the lines of review.md.
func TestReviewSummaryAndGate(t *testing.T) {
	script := reviewScript(t)
	dev := synth(t, "dev")

	functionNames := func() []string {
		var names []string
		for _, fn := range resources(dev.template, "AWS::Lambda::Function") {
			names = append(names, props(fn)["FunctionName"].(string))
		}
		slices.Sort(names)
		return names
	}
	poolID := onlyID(t, dev.template, "AWS::Cognito::UserPool", "UserPool")
	clientID := onlyID(t, dev.template, "AWS::Cognito::UserPoolClient", "UserPool")
	secretID := onlyID(t, dev.template, "AWS::SecretsManager::Secret", "Secret")
	messagesID := onlyID(t, dev.template, "AWS::DynamoDB::Table", "MessagesTable")
	poolName := props(resource(t, dev.template, poolID))["UserPoolName"]
	clientName := props(resource(t, dev.template, clientID))["ClientName"]
	secretName := props(resource(t, dev.template, secretID))["Name"]

	// A pull request that changes a table's sort key: CloudFormation can
	// only do that by creating a new, empty table.
	tableKeyChanged := func(t *testing.T) map[string]any {
		tmpl := copyTemplate(t, dev.template)
		p := props(resource(t, tmpl, messagesID))
		for _, k := range p["KeySchema"].([]any) {
			if k := k.(map[string]any); k["KeyType"] == "RANGE" {
				k["AttributeName"] = "createdAt"
			}
		}
		p["AttributeDefinitions"] = append(p["AttributeDefinitions"].([]any),
			map[string]any{"AttributeName": "createdAt", "AttributeType": "S"})
		return tmpl
	}

	// A pull request that adds GET /health to the HTTP API, next to GET /usage.
	usageRouteID := ""
	for id, r := range resources(dev.template, "AWS::ApiGatewayV2::Route") {
		if props(r)["RouteKey"] == "GET /usage" {
			usageRouteID = id
		}
	}
	if usageRouteID == "" {
		t.Fatal("the dev template has no GET /usage route")
	}
	httpAPIName := props(resource(t, dev.template, props(resource(t, dev.template, usageRouteID))["ApiId"].(map[string]any)["Ref"].(string)))["Name"]
	routeAdded := func(t *testing.T) map[string]any {
		tmpl := copyTemplate(t, dev.template)
		route := copyTemplate(t, resource(t, tmpl, usageRouteID))
		props(route)["RouteKey"] = "GET /health"
		tmpl["Resources"].(map[string]any)["HttpApiGEThealth0A1B2C3D"] = route
		return tmpl
	}

	// A pull request that widens a DynamoDB statement to dynamodb:*.
	policyID, statementIdx := "", -1
	for _, id := range sortedKeys(resources(dev.template, "AWS::IAM::Policy")) {
		for i, st := range props(resource(t, dev.template, id))["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			actions := strs(st.(map[string]any)["Action"])
			if statementIdx < 0 && !slices.ContainsFunc(actions, func(a string) bool { return !strings.HasPrefix(a, "dynamodb:") }) {
				policyID, statementIdx = id, i
			}
		}
	}
	if statementIdx < 0 {
		t.Fatal("the dev template has no DynamoDB statement")
	}
	oldStatement := props(resource(t, dev.template, policyID))["PolicyDocument"].(map[string]any)["Statement"].([]any)[statementIdx].(map[string]any)
	var oldActions []string
	for _, a := range sortedCopy(strs(oldStatement["Action"])) {
		oldActions = append(oldActions, "`"+a+"`")
	}
	iamWidened := func(t *testing.T) map[string]any {
		tmpl := copyTemplate(t, dev.template)
		st := props(resource(t, tmpl, policyID))["PolicyDocument"].(map[string]any)["Statement"].([]any)[statementIdx].(map[string]any)
		st["Action"] = "dynamodb:*"
		return tmpl
	}

	// A pull request that changes how the secret's value is generated
	// (an in-place update: CloudFormation generates a new value, over the
	// API key the operator stored), and one that only rewords its
	// description.
	secretChanged := func(prop string, change func(any) any) func(*testing.T) map[string]any {
		return func(t *testing.T) map[string]any {
			tmpl := copyTemplate(t, dev.template)
			p := props(resource(t, tmpl, secretID))
			p[prop] = change(p[prop])
			return tmpl
		}
	}
	longerPassword := secretChanged("GenerateSecretString", func(v any) any {
		v.(map[string]any)["PasswordLength"] = 32
		return v
	})
	reworded := secretChanged("Description", func(any) any { return "Buddy's Anthropic API key" })
	regenerated := "- **will update** `" + secretID + "` `" + secretName.(string) + "` (secret): `GenerateSecretString` changed; "

	// Pull requests that rename the uploads bucket (a new bucket: the
	// attachments stay in the old one) and that drop it.
	bucketID := onlyID(t, dev.template, "AWS::S3::Bucket", "UploadsBucket")
	bucketPolicyID := onlyID(t, dev.template, "AWS::S3::BucketPolicy", "UploadsBucketPolicy")
	bucketRenamed := func(t *testing.T) map[string]any {
		tmpl := copyTemplate(t, dev.template)
		props(resource(t, tmpl, bucketID))["BucketName"] = "buddy-dev-attachments"
		return tmpl
	}
	withoutBucket := func(t *testing.T) map[string]any {
		tmpl := copyTemplate(t, dev.template)
		delete(tmpl["Resources"].(map[string]any), bucketID)
		delete(tmpl["Resources"].(map[string]any), bucketPolicyID)
		return tmpl
	}

	variant := func(name string) func(*testing.T) map[string]any {
		return func(t *testing.T) map[string]any { return synth(t, name).template }
	}
	var envTemperature []string
	for _, name := range functionNames() {
		envTemperature = append(envTemperature, "- `"+name+"` `TEMPERATURE`: `0.3` → `0.5`")
	}
	destroyed := func(id string, name any, what, verdict string) string {
		return "- **will destroy** `" + id + "` `" + name.(string) + "` (" + what + "); " + verdict
	}
	const notAllowed = "**not allowed**: "

	cases := []struct {
		name string
		// base is the template before the change; the dev template when
		// nil.
		base  func(*testing.T) map[string]any
		head  func(*testing.T) map[string]any
		allow string
		exit  int
		// gate is how the line after the title starts; gateNames are the
		// logical ids it must name.
		gate      string
		gateNames []string
		// sections holds the exact lines of the sections a case is about
		// (in any order); a section not listed is not checked.
		sections map[string][]string
		// contains holds, per section, prefixes of lines that must be
		// there, for lines whose rest a case does not decide.
		contains map[string][]string
	}{
		{
			name: "an unchanged tree says no differences",
			head: variant("dev"),
			gate: "No differences.",
		},
		{
			name: "a TEMPERATURE change lists one environment line per function and passes",
			head: variant("dev-temperature"),
			gate: "**Gate: passed.**",
			sections: map[string][]string{
				secStateful: none, secIAM: none, secEnv: envTemperature, secInventory: none,
			},
		},
		{
			name:      "an external OIDC issuer destroys the dev user pool and fails",
			head:      variant("dev-issuer"),
			exit:      1,
			gate:      "**Gate: failed.**",
			gateNames: []string{poolID, clientID},
			sections: map[string][]string{
				secStateful: {
					destroyed(poolID, poolName, "Cognito user pool", notAllowed+"its users would be lost"),
					destroyed(clientID, clientName, "Cognito user pool client", notAllowed+"its client id would change"),
				},
			},
			contains: map[string][]string{secEnv: {"- `p2-two-websocket-connect-two` `JWT_ISSUER`: "}},
		},
		{
			name:  "an external OIDC issuer passes when ALLOW_REPLACE names the pool and client",
			head:  variant("dev-issuer"),
			allow: poolID + " , " + clientID,
			gate:  "**Gate: passed.**",
			sections: map[string][]string{
				secStateful: {
					destroyed(poolID, poolName, "Cognito user pool", "allowed by ALLOW_REPLACE"),
					destroyed(clientID, clientName, "Cognito user pool client", "allowed by ALLOW_REPLACE"),
				},
			},
		},
		{
			name:      "ALLOW_REPLACE naming only the pool still fails for the client",
			head:      variant("dev-issuer"),
			allow:     poolID,
			exit:      1,
			gate:      "**Gate: failed.**",
			gateNames: []string{clientID},
			sections: map[string][]string{
				secStateful: {
					destroyed(poolID, poolName, "Cognito user pool", "allowed by ALLOW_REPLACE"),
					destroyed(clientID, clientName, "Cognito user pool client", notAllowed+"its client id would change"),
				},
			},
		},
		{
			name:      "a table key change replaces the table and fails",
			head:      tableKeyChanged,
			exit:      1,
			gate:      "**Gate: failed.**",
			gateNames: []string{messagesID},
			sections: map[string][]string{
				secStateful:  {"- **will replace** `" + messagesID + "` (DynamoDB table): `KeySchema` changed; " + notAllowed + "its items would be lost"},
				secIAM:       none,
				secEnv:       none,
				secInventory: none,
			},
		},
		{
			name: "adopting the secret orphans the retained secret and passes",
			head: variant("dev-adopt"),
			gate: "**Gate: passed.**",
			sections: map[string][]string{
				secStateful: {"- **will orphan** `" + secretID + "` `" + secretName.(string) +
					"` (secret); retained: it stays in the account, no longer managed by this stack"},
				secInventory: none,
			},
			contains: map[string][]string{secIAM: {"- added: Allow ", "- removed: Allow "}},
		},
		{
			name:  "an ALLOW_REPLACE entry that matches nothing is reported",
			head:  variant("dev-adopt"),
			allow: "NoSuchTable1234",
			gate:  "**Gate: passed.**",
			contains: map[string][]string{secStateful: {
				"- ALLOW_REPLACE names `NoSuchTable1234`, which this change neither replaces, destroys nor regenerates",
			}},
		},
		{
			name:      "a change to the secret's generation settings regenerates its value and fails",
			head:      longerPassword,
			exit:      1,
			gate:      "**Gate: failed.**",
			gateNames: []string{secretID},
			sections: map[string][]string{
				secStateful:  {regenerated + notAllowed + "would regenerate the secret's value: the operator's API key would be lost"},
				secIAM:       none,
				secEnv:       none,
				secInventory: none,
			},
		},
		{
			name:  "a change to the secret's generation settings passes when ALLOW_REPLACE names the secret",
			head:  longerPassword,
			allow: secretID,
			gate:  "**Gate: passed.**",
			sections: map[string][]string{
				secStateful: {regenerated + "allowed by ALLOW_REPLACE"},
			},
		},
		{
			name: "a change to the secret's description keeps its value and passes",
			head: reworded,
			gate: "**Gate: passed.**",
			sections: map[string][]string{
				secStateful: none, secIAM: none, secEnv: none, secInventory: none,
			},
		},
		{
			name: "an added route is listed",
			head: routeAdded,
			gate: "**Gate: passed.**",
			sections: map[string][]string{
				secStateful: none, secIAM: none, secEnv: none,
				secInventory: {"- added route `GET /health` on `" + httpAPIName.(string) + "`"},
			},
		},
		{
			name:      "renaming the uploads bucket replaces it and fails",
			head:      bucketRenamed,
			exit:      1,
			gate:      "**Gate: failed.**",
			gateNames: []string{bucketID},
			sections: map[string][]string{
				secStateful:  {"- **will replace** `" + bucketID + "` (S3 bucket): `BucketName` changed; " + notAllowed + "its objects would be lost"},
				secInventory: none,
			},
		},
		{
			name:  "renaming the uploads bucket passes when ALLOW_REPLACE names it",
			head:  bucketRenamed,
			allow: bucketID,
			gate:  "**Gate: passed.**",
			sections: map[string][]string{
				secStateful: {"- **will replace** `" + bucketID + "` (S3 bucket): `BucketName` changed; allowed by ALLOW_REPLACE"},
			},
		},
		{
			name:      "dropping the uploads bucket destroys it, fails and lists it as removed",
			head:      withoutBucket,
			exit:      1,
			gate:      "**Gate: failed.**",
			gateNames: []string{bucketID},
			sections: map[string][]string{
				secStateful:  {"- **will destroy** `" + bucketID + "` (S3 bucket); " + notAllowed + "its objects would be lost"},
				secInventory: {"- removed bucket `" + bucketID + "`"},
			},
		},
		{
			name: "an added bucket is listed and passes",
			base: withoutBucket,
			head: variant("dev"),
			gate: "**Gate: passed.**",
			sections: map[string][]string{
				secStateful:  none,
				secInventory: {"- added bucket `" + bucketID + "`"},
			},
		},
		{
			name: "a widened IAM statement is listed as removed and added",
			head: iamWidened,
			gate: "**Gate: passed.**",
			sections: map[string][]string{
				secStateful: none, secEnv: none, secInventory: none,
			},
			contains: map[string][]string{secIAM: {
				"- added: Allow `dynamodb:*` on ",
				"- removed: Allow " + strings.Join(oldActions, ", ") + " on ",
			}},
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			head, err := json.Marshal(tc.head(t))
			if err != nil {
				t.Fatal(err)
			}
			headFile := filepath.Join(dir, "head.template.json")
			baseFile := dev.file
			if tc.base != nil {
				base, err := json.Marshal(tc.base(t))
				if err != nil {
					t.Fatal(err)
				}
				baseFile = filepath.Join(dir, "base.template.json")
				if err := os.WriteFile(baseFile, base, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cliFile := filepath.Join(dir, "cli-diff.txt")
			out := filepath.Join(dir, "cdk.out", "review.md")
			cliText := "Stack Buddy-dev (the CLI's diff of " + tc.name + ")"
			if err := os.WriteFile(headFile, head, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cliFile, []byte(cliText+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("node", script, "--title", "Buddy-dev: "+tc.name,
				"--cli-diff", cliFile, "--out", out, baseFile, headFile)
			cmd.Env = append(withoutEnv("ALLOW_REPLACE"), "ALLOW_REPLACE="+tc.allow)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			exit := 0
			if err := cmd.Run(); err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatal(err)
				}
				exit = ee.ExitCode()
			}
			if exit != tc.exit {
				t.Fatalf("exit status %d, want %d\nstderr: %s\nstdout:\n%s", exit, tc.exit, stderr.String(), stdout.String())
			}
			for _, id := range tc.gateNames {
				if !strings.Contains(stderr.String(), id) {
					t.Errorf("stderr does not name %s: %q", id, stderr.String())
				}
			}

			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			md := string(b)
			// What the terminal shows is review.md without the CLI's diff,
			// which make diff has printed above it.
			if !strings.HasPrefix(md, stdout.String()) || stdout.Len() == 0 {
				t.Errorf("stdout is not the start of review.md:\n%s", stdout.String())
			}
			doc := parseReview(t, md)
			if doc.title != "Buddy-dev: "+tc.name {
				t.Errorf("title %q", doc.title)
			}
			if len(doc.preamble) != 1 || !strings.HasPrefix(doc.preamble[0], tc.gate) {
				t.Errorf("gate lines %q, want one starting %q", doc.preamble, tc.gate)
			}
			for _, id := range tc.gateNames {
				if len(doc.preamble) > 0 && !strings.Contains(doc.preamble[0], "`"+id+"`") {
					t.Errorf("gate line does not name %s: %q", id, doc.preamble[0])
				}
			}

			wantHeadings := []string{secStateful, secIAM, secEnv, secInventory, secCLI}
			if tc.gate == "No differences." {
				wantHeadings = []string{secCLI}
			}
			if !slices.Equal(doc.headings, wantHeadings) {
				t.Errorf("sections %q, want %q", doc.headings, wantHeadings)
			}
			if !slices.Contains(doc.sections[secCLI], cliText) {
				t.Errorf("the CLI's diff is not in review.md: %q", doc.sections[secCLI])
			}
			for sec, want := range tc.sections {
				if got := doc.sections[sec]; !slices.Equal(sortedCopy(got), sortedCopy(want)) {
					t.Errorf("%s:\n got %q\nwant %q", sec, got, want)
				}
			}
			for sec, prefixes := range tc.contains {
				for _, p := range prefixes {
					if !slices.ContainsFunc(doc.sections[sec], func(l string) bool { return strings.HasPrefix(l, p) }) {
						t.Errorf("%s has no line starting %q: %q", sec, p, doc.sections[sec])
					}
				}
			}
		})
	}
}

// TestReviewRejectsBadInput: a template that is not JSON is a usage error
// (exit 2), never a passed gate, and no review.md is written.
func TestReviewRejectsBadInput(t *testing.T) {
	script := reviewScript(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("Resources: {}"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "review.md")
	for _, args := range [][]string{{bad, bad}, {bad}, {filepath.Join(dir, "missing.json"), bad}} {
		cmd := exec.Command("node", append([]string{script, "--out", out}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%q: %v, want exit status 2 (stderr %q)", args, err, stderr.String())
		}
		if !strings.HasPrefix(stderr.String(), "review: ") {
			t.Errorf("%q: stderr %q does not say what is wrong", args, stderr.String())
		}
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("review.md written for bad input (%v)", err)
	}
}

// withoutEnv is the environment less the variable key.
func withoutEnv(key string) []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
}
