package buddy_test

import (
	"testing"

	"github.com/p2/buddy/lambda/manifest"
)

// TestReplyJobFailureQueue: a reply job that fails or expires lands in an
// encrypted, TLS-only queue kept 14 days, which an event source mapping
// hands back to the message function in batches of 10 with per-record
// failures; a record it cannot handle in 5 attempts moves to a second
// queue of the same kind instead of coming back for 14 days, which no
// other queue may use as its dead-letter queue.
func TestReplyJobFailureQueue(t *testing.T) {
	for _, v := range []string{"dev", "prod"} {
		s := synth(t, v)
		failures := logicalID(s.stack, s.res.ReplyJobFailures)
		unhandled := logicalID(s.stack, s.res.UnhandledReplyJobFailures)
		if n := len(resources(s.template, "AWS::SQS::Queue")); n != 2 {
			t.Errorf("%s: %d queues, want 2", v, n)
		}
		fourteenDays := 14 * 24 * 3600
		equal(t, v+": failure queue", props(resource(t, s.template, failures)), map[string]any{
			"QueueName":              "buddy-" + v + "-reply-job-failures",
			"SqsManagedSseEnabled":   true,
			"MessageRetentionPeriod": fourteenDays,
			// Six times the function's timeout, as AWS asks of a queue a
			// function consumes.
			"VisibilityTimeout": 6 * manifest.WebSocketMessage.TimeoutSeconds,
			"RedrivePolicy": map[string]any{
				"deadLetterTargetArn": map[string]any{"Fn::GetAtt": []string{unhandled, "Arn"}},
				"maxReceiveCount":     5,
			},
			"Tags": []any{map[string]any{"Key": "project", "Value": "buddy"}, map[string]any{"Key": "stage", "Value": v}},
		})
		equal(t, v+": unhandled queue", render(props(resource(t, s.template, unhandled))), map[string]any{
			"SqsManagedSseEnabled":   true,
			"MessageRetentionPeriod": fourteenDays,
			// Only the failure queue may use it as its dead-letter queue,
			// named by the ARN of its fixed name (a reference would be a
			// cycle: the failure queue refers to this one).
			"RedriveAllowPolicy": map[string]any{
				"redrivePermission": "byQueue",
				"sourceQueueArns":   []any{"arn:aws:sqs:us-east-1:${AWS::AccountId}:buddy-" + v + "-reply-job-failures"},
			},
			"Tags": []any{map[string]any{"Key": "project", "Value": "buddy"}, map[string]any{"Key": "stage", "Value": v}},
		})
		tlsOnly := map[string]bool{}
		for _, qp := range resources(s.template, "AWS::SQS::QueuePolicy") {
			p := props(qp)
			for _, q := range list(p["Queues"]) {
				q := render(q).(string)
				equal(t, v+": policy of "+q, p["PolicyDocument"].(map[string]any)["Statement"], []any{map[string]any{
					"Action": "sqs:*", "Effect": "Deny", "Principal": map[string]any{"AWS": "*"},
					"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
					"Resource":  map[string]any{"Fn::GetAtt": []string{q[2 : len(q)-1], "Arn"}},
				}})
				tlsOnly[q] = true
			}
		}
		equal(t, v+": TLS-only queues", sortedKeys(tlsOnly), sortedCopy([]string{"${" + failures + "}", "${" + unhandled + "}"}))

		mappings := resources(s.template, "AWS::Lambda::EventSourceMapping")
		if len(mappings) != 1 {
			t.Fatalf("%s: %d event source mappings, want 1", v, len(mappings))
		}
		for _, m := range mappings {
			equal(t, v+": failure queue mapping", props(m), map[string]any{
				"EventSourceArn":        map[string]any{"Fn::GetAtt": []string{failures, "Arn"}},
				"FunctionName":          map[string]any{"Ref": functionsByName(t, s.template)[messageFunction]},
				"BatchSize":             10,
				"FunctionResponseTypes": []string{"ReportBatchItemFailures"},
				"ScalingConfig":         map[string]any{"MaximumConcurrency": 2},
				"Tags":                  []any{map[string]any{"Key": "project", "Value": "buddy"}, map[string]any{"Key": "stage", "Value": v}},
			})
		}
	}
}
