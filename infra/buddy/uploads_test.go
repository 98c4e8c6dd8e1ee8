package buddy_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/p2/buddy/lambda/manifest"
)

// s3Grant is one IAM statement on the uploads bucket's objects.
type s3Grant struct {
	Actions   []string
	Resources []string
	Condition any
}

// The grants on the uploads bucket, written out here on purpose (DESIGN
// §9: only the conversation API and the message function, each with the
// least it needs); the resource of each is the objects under uploads/.
var (
	// Presign the POST (PutObject, and PutObjectTagging for the pending
	// tag the POST sets), check (HEAD, ranged GET) and presign GETs
	// (GetObject), delete (DeleteObject, also for DeleteObjects).
	conversationUploadGrants = []s3Grant{
		{Actions: []string{"s3:DeleteObject", "s3:GetObject", "s3:PutObject", "s3:PutObjectTagging"}},
		// On the bucket itself: without it S3 answers a HEAD of a
		// missing key 403, not 404.
		{Actions: []string{"s3:ListBucket"}, Resources: []string{"bucket"}},
	}
	// Read for the model; retag as attached, and nothing else.
	messageUploadGrants = []s3Grant{
		{Actions: []string{"s3:GetObject"}},
		{Actions: []string{"s3:PutObjectTagging"}, Condition: map[string]any{
			"StringEquals":              map[string]any{"s3:RequestObjectTag/buddy-attached": "yes"},
			"ForAllValues:StringEquals": map[string]any{"s3:RequestObjectTagKeys": []any{"buddy-attached"}},
		}},
	}
)

// uploadObjectsArn is the resource of every grant on the bucket, as
// render shows it.
func uploadObjectsArn(s *synthesized) string {
	return "${" + logicalID(s.stack, s.res.UploadsBucket) + ".Arn}/uploads/*"
}

func sortGrants(gs []s3Grant) []s3Grant {
	out := slices.Clone(gs)
	slices.SortFunc(out, func(a, b s3Grant) int {
		x, _ := json.Marshal(a)
		y, _ := json.Marshal(b)
		return strings.Compare(string(x), string(y))
	})
	return out
}

// TestUploadsBucket: one private bucket for the attachments (Block Public
// Access, ACLs off, SSE-KMS with the AWS-managed key, TLS 1.2 only, no
// versioning), CORS for exactly the HTTP API's origins, unattached uploads
// expiring after a day, access logs to a bucket of its own, retained in
// prod; and no custom resource (no autoDeleteObjects).
func TestUploadsBucket(t *testing.T) {
	if manifest.UploadKeyPrefix != "uploads/" || manifest.UploadTagKey != "buddy-attached" ||
		manifest.UploadTagPending != "no" || manifest.UploadTagAttached != "yes" || manifest.UploadExpiryDays != 1 {
		t.Fatalf("the manifest's bucket facts changed (%q %q=%q/%q, %d days): update this test and the grants",
			manifest.UploadKeyPrefix, manifest.UploadTagKey, manifest.UploadTagPending, manifest.UploadTagAttached, manifest.UploadExpiryDays)
	}
	for _, v := range []string{"dev", "prod", "alt"} {
		s := synth(t, v)
		policy := map[bool]string{true: "Retain", false: "Delete"}[s.settings.Prod]
		uploadsID := logicalID(s.stack, s.res.UploadsBucket)
		logsID := logicalID(s.stack, s.res.UploadsAccessLogs)
		buckets := resources(s.template, "AWS::S3::Bucket")
		equal(t, v+" buckets", sortedKeys(buckets), sortedCopy([]string{uploadsID, logsID}))
		for id, r := range s.template["Resources"].(map[string]any) {
			if typ := fmt.Sprint(r.(map[string]any)["Type"]); strings.HasPrefix(typ, "Custom::") || typ == "AWS::CloudFormation::CustomResource" {
				t.Errorf("%s: custom resource %s (%s): the deployed shape is the six functions", v, id, typ)
			}
		}
		blockAll := map[string]any{"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true}
		ownerEnforced := map[string]any{"Rules": []any{map[string]any{"ObjectOwnership": "BucketOwnerEnforced"}}}

		r := resource(t, s.template, uploadsID)
		p := props(r)
		equal(t, v+" uploads: public access block", p["PublicAccessBlockConfiguration"], blockAll)
		equal(t, v+" uploads: ownership (no ACLs)", p["OwnershipControls"], ownerEnforced)
		equal(t, v+" uploads: encryption", p["BucketEncryption"], map[string]any{"ServerSideEncryptionConfiguration": []any{
			map[string]any{"BucketKeyEnabled": true, "ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "aws:kms"}},
		}})
		equal(t, v+" uploads: versioning", p["VersioningConfiguration"], nil)
		equal(t, v+" uploads: name (CloudFormation's)", p["BucketName"], nil)
		equal(t, v+" uploads: deletion policy", []any{r["DeletionPolicy"], r["UpdateReplacePolicy"]}, []any{policy, policy})
		equal(t, v+" uploads: lifecycle", p["LifecycleConfiguration"], map[string]any{"Rules": []any{
			map[string]any{
				"Id": "expire-unattached-uploads", "Status": "Enabled", "Prefix": "uploads/",
				"TagFilters":       []any{map[string]any{"Key": "buddy-attached", "Value": "no"}},
				"ExpirationInDays": 1,
			},
			map[string]any{
				"Id": "abort-incomplete-multipart-uploads", "Status": "Enabled",
				"AbortIncompleteMultipartUpload": map[string]any{"DaysAfterInitiation": 1},
			},
		}})
		equal(t, v+" uploads: access logs", render(p["LoggingConfiguration"]), map[string]any{
			"DestinationBucketName": "${" + logsID + "}", "LogFilePrefix": "uploads-bucket/",
		})
		httpCors := props(resource(t, s.template, logicalID(s.stack, s.res.HTTPAPI)))["CorsConfiguration"].(map[string]any)
		equal(t, v+" uploads: CORS", p["CorsConfiguration"], map[string]any{"CorsRules": []any{map[string]any{
			"AllowedOrigins": httpCors["AllowOrigins"],
			"AllowedMethods": []any{"POST", "GET"},
			"AllowedHeaders": []any{"content-type"},
			"ExposedHeaders": []any{"ETag"},
			"MaxAge":         3600,
		}}})
		if s.settings.Prod {
			equal(t, v+" uploads: CORS origins", httpCors["AllowOrigins"], []any{prodOrigin})
		}

		r = resource(t, s.template, logsID)
		p = props(r)
		equal(t, v+" access logs: public access block", p["PublicAccessBlockConfiguration"], blockAll)
		equal(t, v+" access logs: ownership (no ACLs)", p["OwnershipControls"], ownerEnforced)
		// S3 delivers server access logs to SSE-S3 buckets only.
		equal(t, v+" access logs: encryption", p["BucketEncryption"], map[string]any{"ServerSideEncryptionConfiguration": []any{
			map[string]any{"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "AES256"}},
		}})
		equal(t, v+" access logs: versioning", p["VersioningConfiguration"], nil)
		equal(t, v+" access logs: deletion policy", []any{r["DeletionPolicy"], r["UpdateReplacePolicy"]}, []any{policy, policy})
		equal(t, v+" access logs: lifecycle", p["LifecycleConfiguration"], map[string]any{"Rules": []any{map[string]any{
			"Id": "expire-access-logs", "Status": "Enabled", "ExpirationInDays": s.settings.LogRetentionDays,
			"AbortIncompleteMultipartUpload": map[string]any{"DaysAfterInitiation": 1},
		}}})
		equal(t, v+" access logs: CORS", p["CorsConfiguration"], nil)

		// The bucket policies: TLS 1.2 or later only, for everyone; the
		// uploads bucket's allows nothing (the roles do), the log
		// bucket's lets S3 deliver the uploads bucket's logs and nothing
		// else.
		tlsOnly := func(bucket string) []any {
			res := []any{"${" + bucket + ".Arn}", "${" + bucket + ".Arn}/*"}
			return []any{
				map[string]any{"Effect": "Deny", "Principal": map[string]any{"AWS": "*"}, "Action": "s3:*", "Resource": res,
					"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}}},
				map[string]any{"Effect": "Deny", "Principal": map[string]any{"AWS": "*"}, "Action": "s3:*", "Resource": res,
					"Condition": map[string]any{"NumericLessThan": map[string]any{"s3:TlsVersion": 1.2}}},
			}
		}
		policies := map[string]any{}
		for _, bp := range resources(s.template, "AWS::S3::BucketPolicy") {
			bp := render(props(bp)).(map[string]any)
			policies[fmt.Sprint(bp["Bucket"])] = bp["PolicyDocument"].(map[string]any)["Statement"]
		}
		equal(t, v+" bucket policies", policies, map[string]any{
			"${" + uploadsID + "}": tlsOnly(uploadsID),
			"${" + logsID + "}": append(tlsOnly(logsID), map[string]any{
				"Effect": "Allow", "Principal": map[string]any{"Service": "logging.s3.amazonaws.com"},
				"Action": "s3:PutObject", "Resource": "${" + logsID + ".Arn}/uploads-bucket/*",
				"Condition": map[string]any{
					"ArnLike":      map[string]any{"aws:SourceArn": "${" + uploadsID + ".Arn}"},
					"StringEquals": map[string]any{"aws:SourceAccount": "${AWS::AccountId}"},
				},
			}),
		})

		out := s.template["Outputs"].(map[string]any)["UploadsBucketName"].(map[string]any)["Value"]
		equal(t, v+" UploadsBucketName output", render(out), "${"+uploadsID+"}")
	}
}

// TestOnlyTwoRolesTouchTheUploadsBucket: across every IAM policy of the
// template (the roles' policies and their inline ones), the statements
// with an S3 action or a reference to either bucket are exactly the grants
// of the conversation API's and the message function's roles, on the
// objects under uploads/ only (but ListBucket, on the bucket): no other
// role, nothing on the access-log bucket.
func TestOnlyTwoRolesTouchTheUploadsBucket(t *testing.T) {
	for _, v := range []string{"dev", "prod", "alt"} {
		s := synth(t, v)
		uploadsID := logicalID(s.stack, s.res.UploadsBucket)
		logsID := logicalID(s.stack, s.res.UploadsAccessLogs)
		// A statement touches the buckets with an S3 action (or every
		// action), or with one of them among its resources.
		touches := func(st map[string]any) bool {
			for _, a := range strs(st["Action"]) {
				if a == "*" || strings.HasPrefix(strings.ToLower(a), "s3:") {
					return true
				}
			}
			b, _ := json.Marshal(st["Resource"])
			return strings.Contains(string(b), uploadsID) || strings.Contains(string(b), logsID)
		}
		got := map[string][]s3Grant{}
		add := func(role string, st map[string]any) {
			if st["Effect"] != "Allow" || st["NotAction"] != nil || st["NotResource"] != nil {
				t.Errorf("%s: role %s: statement %v", v, role, st)
			}
			got[role] = append(got[role], s3Grant{Actions: sortedCopy(strs(st["Action"])), Resources: strs(st["Resource"]), Condition: st["Condition"]})
		}
		for _, pol := range resources(s.template, "AWS::IAM::Policy") {
			p := render(props(pol)).(map[string]any)
			for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				if st := st.(map[string]any); touches(st) {
					for _, role := range strs(p["Roles"]) {
						add(strings.Trim(role, "${}"), st)
					}
				}
			}
		}
		for id, role := range resources(s.template, "AWS::IAM::Role") {
			for _, inline := range list(render(props(role)["Policies"])) {
				if inline == nil {
					continue
				}
				for _, st := range inline.(map[string]any)["PolicyDocument"].(map[string]any)["Statement"].([]any) {
					if st := st.(map[string]any); touches(st) {
						add(id, st)
					}
				}
			}
		}
		for _, kind := range []string{"AWS::IAM::ManagedPolicy", "AWS::IAM::UserPolicy", "AWS::IAM::GroupPolicy"} {
			if n := len(resources(s.template, kind)); n != 0 {
				t.Errorf("%s: %d %s", v, n, kind)
			}
		}

		conversationRole, _ := roleOf(t, s, manifest.ConversationAPI.Name)
		messageRole, _ := roleOf(t, s, manifest.WebSocketMessage.Name)
		want := map[string][]s3Grant{}
		for role, grants := range map[string][]s3Grant{conversationRole: conversationUploadGrants, messageRole: messageUploadGrants} {
			for _, g := range grants {
				if g.Resources == nil {
					g.Resources = []string{uploadObjectsArn(s)}
				} else {
					g.Resources = []string{"${" + logicalID(s.stack, s.res.UploadsBucket) + ".Arn}"}
				}
				want[role] = append(want[role], g)
			}
		}
		for role := range got {
			got[role] = sortGrants(got[role])
		}
		for role := range want {
			want[role] = sortGrants(want[role])
		}
		equal(t, v+": IAM statements on the buckets, by role", got, want)
	}
}
