package buddy

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"

	"github.com/p2/buddy/lambda/manifest"
)

// The reply jobs' failure path. sendMessage stores the user's message and
// invokes p2-two-websocket-message-two asynchronously with the reply job;
// a job that never runs to the end (its run failed, or it waited in
// Lambda's async queue longer than ReplyJobMaxEventAgeMinutes, e.g. while
// the function was throttled) is not retried (a retry would stream the
// reply twice). Lambda sends its destination record (the job and why it
// failed) to the failure queue, whose event source mapping hands it to the
// same function: it marks the reply failed and tells the client.
const (
	// ReplyJobFailureRetentionDays is SQS's longest retention: time to
	// look at records the function could not handle.
	ReplyJobFailureRetentionDays = 14
	// ReplyJobFailureBatchSize records per invocation; each is reported
	// on its own (ReportBatchItemFailures), so one bad record does not
	// return the whole batch to the queue.
	ReplyJobFailureBatchSize = 10
	// ReplyJobFailureMaxConcurrency caps the invocations draining the
	// queue: a burst of failures (an outage) must not take the
	// concurrency the replies need. Two is the lowest SQS allows.
	ReplyJobFailureMaxConcurrency = 2
	// ReplyJobFailureMaxReceives is how often a record is handed to the
	// function before it moves to the unhandled queue (five is the
	// lowest AWS recommends, so that throttled deliveries are not
	// mistaken for failures).
	ReplyJobFailureMaxReceives = 5
	// replyJobFailureVisibilityFactor: AWS asks for a visibility timeout
	// of six times the function's timeout, so a record in a batch that
	// Lambda retries after a throttle is not handed out twice.
	replyJobFailureVisibilityFactor = 6
)

// newReplyJobQueues declares the reply jobs' failure queue and the queue
// of failure records the function could not handle in
// ReplyJobFailureMaxReceives attempts: without it such a record would come
// back every visibility timeout for 14 days. A record holds the job (ids,
// no message or prompt text) and why it failed: both queues are encrypted
// at rest (SQS-managed keys: no key or key policy to keep) and accept TLS
// only, and only the message role may read the failure queue.
// Nothing reads the unhandled queue; its alarm asks an operator to look.
//
// The unhandled queue is the dead-letter queue of the failure queue alone:
// its redrive allow policy names that one source queue (no other queue of
// the account may use it as a dead-letter queue). The failure queue's
// redrive policy refers to the unhandled queue, so the allow policy cannot
// refer back to it (CloudFormation refuses the cycle): the failure queue
// has a fixed name, ReplyJobFailuresQueueName, and the policy names it by
// the ARN built from it.
func newReplyJobQueues(stack awscdk.Stack, s Settings) (failures, unhandled awssqs.Queue) {
	retention := awscdk.Duration_Days(jsii.Number(ReplyJobFailureRetentionDays))
	name := ReplyJobFailuresQueueName(s.Stage)
	source := awssqs.Queue_FromQueueArn(stack, jsii.String("ReplyJobFailuresByName"), stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("sqs"), Resource: jsii.String(name), ArnFormat: awscdk.ArnFormat_NO_RESOURCE_NAME,
	}))
	unhandled = awssqs.NewQueue(stack, jsii.String("UnhandledReplyJobFailures"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: retention,
		RedriveAllowPolicy: &awssqs.RedriveAllowPolicy{
			RedrivePermission: awssqs.RedrivePermission_BY_QUEUE,
			SourceQueues:      &[]awssqs.IQueue{source},
		},
	})
	failures = awssqs.NewQueue(stack, jsii.String("ReplyJobFailures"), &awssqs.QueueProps{
		QueueName:         jsii.String(name),
		Encryption:        awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		RetentionPeriod:   retention,
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(replyJobFailureVisibilityFactor * manifest.WebSocketMessage.TimeoutSeconds)),
		DeadLetterQueue:   &awssqs.DeadLetterQueue{Queue: unhandled, MaxReceiveCount: jsii.Number(ReplyJobFailureMaxReceives)},
	})
	return failures, unhandled
}

// ReplyJobFailuresQueueName is the name of a stage's failure queue.
func ReplyJobFailuresQueueName(stage string) string { return "buddy-" + stage + "-reply-job-failures" }

// replyJobFailureSource is the event source mapping from the failure queue
// to the message function (which may consume from that queue only).
func replyJobFailureSource(queue awssqs.IQueue) awslambda.IEventSource {
	return awslambdaeventsources.NewSqsEventSource(queue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(ReplyJobFailureBatchSize),
		ReportBatchItemFailures: jsii.Bool(true),
		MaxConcurrency:          jsii.Number(ReplyJobFailureMaxConcurrency),
	})
}
