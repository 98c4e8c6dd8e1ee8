package buddy

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/jsii-runtime-go"

	"github.com/p2/buddy/lambda/manifest"
)

// AlarmPeriodMinutes is the evaluation window of every alarm.
const AlarmPeriodMinutes = 5

// ModelErrorRateExpression is the share of failed model calls, in percent,
// from the metrics the reply job reports (EMF, no dimensions).
const ModelErrorRateExpression = "IF(requests > 0, 100 * errors / requests, 0)"

// TransactionConflictsThreshold is how many DynamoDB transaction conflicts
// in AlarmPeriodMinutes raise an alarm. A conflict is one user's burst
// meeting itself on their own items (the day's counter, the running set);
// the store retries it and answers rate_limited when it persists, so a few
// are normal traffic. Fifty in five minutes means contention far beyond a
// burst: a client in a loop, or a hot item the design did not foresee.
const TransactionConflictsThreshold = 50

// tableOperations are the DynamoDB operations (the Operation dimension of
// its per-request metrics) of the store's calls on each table: the
// operation of each action tableAccesses grants on it, and
// TransactWriteItems for a table written at all (IAM checks a
// transaction's items as PutItem, UpdateItem, DeleteItem and
// ConditionCheckItem, so the grants cannot tell which writes are items of
// one). In a fixed order, so the template is stable.
func tableOperations(table manifest.Table) []string {
	operation := map[string]string{
		getItem: "GetItem", putItem: "PutItem", updateItem: "UpdateItem", deleteItem: "DeleteItem",
		query: "Query", batchGetItem: "BatchGetItem", batchWriteItem: "BatchWriteItem",
	}
	used := map[string]bool{}
	for _, a := range tableAccesses {
		if a.table.ID != table.ID {
			continue
		}
		for _, action := range a.actions {
			if op, ok := operation[action]; ok {
				used[op] = true
			}
			if action != getItem && action != query && action != batchGetItem {
				used["TransactWriteItems"] = true
			}
		}
	}
	var ops []string
	for _, op := range []string{"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"} {
		if used[op] {
			ops = append(ops, op)
		}
	}
	return ops
}

// tableMetricSum is the Sum of one of a table's per-operation DynamoDB
// metrics (ThrottledRequests, SystemErrors: DynamoDB publishes them by
// table and operation only) over its operations. Each series is filled
// with 0 before they are added: metric math adds two series only at the
// timestamps where both have a value, and an operation without traffic or
// errors has none, which would hide the others. (The table's own
// Metric...ForOperations helpers add them unfilled.)
func tableMetricSum(table awsdynamodb.Table, metricName string, ops []string, period awscdk.Duration) awscloudwatch.IMetric {
	using := map[string]awscloudwatch.IMetric{}
	var terms []string
	for _, op := range ops {
		id := strings.ToLower(op[:1]) + op[1:]
		using[id] = table.Metric(jsii.String(metricName), &awscloudwatch.MetricOptions{
			DimensionsMap: &map[string]*string{"TableName": table.TableName(), "Operation": jsii.String(op)},
			Statistic:     jsii.String("Sum"),
			Period:        period,
		})
		terms = append(terms, "FILL("+id+", 0)")
	}
	return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression:   jsii.String(strings.Join(terms, " + ")),
		UsingMetrics: &using,
		Label:        jsii.String(metricName + " (all operations)"),
		Period:       period,
	})
}

// newAlarms declares, for each function, an alarm on any error and on any
// throttle in five minutes; one on the model error rate; two on the reply
// jobs' failure queues; one on any internal error and one on many
// transaction conflicts (both EMF metrics of the runtime); and for each
// table, one on any throttled request and one on any system error. All
// notify one SNS topic (subscribe with -c alarmEmail=... or later in the
// console).
func newAlarms(stack awscdk.Stack, s Settings, r *Resources) (awssns.Topic, []awscloudwatch.Alarm) {
	topic := awssns.NewTopic(stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("Buddy " + s.Stage + " alarms"),
		EnforceSSL:  jsii.Bool(true),
	})
	if s.AlarmEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(s.AlarmEmail), nil))
	}
	action := awscloudwatchactions.NewSnsAction(topic)
	period := awscdk.Duration_Minutes(jsii.Number(AlarmPeriodMinutes))
	atLeastOnce := func(id, name, desc string, m awscloudwatch.IMetric) awscloudwatch.Alarm {
		return awscloudwatch.NewAlarm(stack, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmName:          jsii.String(name),
			AlarmDescription:   jsii.String(desc),
			Metric:             m,
			Threshold:          jsii.Number(1),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
	}
	sum := &awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Sum")}
	var alarms []awscloudwatch.Alarm
	for _, fn := range manifest.Functions {
		f := r.Functions[fn.Name]
		id := constructID(fn.Dir)
		alarms = append(alarms,
			atLeastOnce(id+"ErrorsAlarm", fmt.Sprintf("buddy-%s-%s-errors", s.Stage, fn.Dir),
				fmt.Sprintf("%s failed at least once in %d minutes", fn.Name, AlarmPeriodMinutes), f.MetricErrors(sum)),
			atLeastOnce(id+"ThrottlesAlarm", fmt.Sprintf("buddy-%s-%s-throttles", s.Stage, fn.Dir),
				fmt.Sprintf("%s was throttled at least once in %d minutes", fn.Name, AlarmPeriodMinutes), f.MetricThrottles(sum)),
		)
	}
	// A reply job that failed or expired. The function's event source
	// mapping drains the failure queue within seconds, so the number of
	// visible messages would hardly ever leave 0: count the messages sent
	// to it instead.
	alarms = append(alarms, atLeastOnce("ReplyJobFailuresAlarm", fmt.Sprintf("buddy-%s-reply-job-failures", s.Stage),
		fmt.Sprintf("A reply job of %s failed or expired at least once in %d minutes (its reply was marked failed)",
			manifest.WebSocketMessage.Name, AlarmPeriodMinutes),
		r.ReplyJobFailures.MetricNumberOfMessagesSent(sum)))
	// Nothing drains the unhandled queue: a record there stays visible
	// until an operator looks (or 14 days pass).
	alarms = append(alarms, atLeastOnce("UnhandledReplyJobFailuresAlarm", fmt.Sprintf("buddy-%s-reply-job-failures-unhandled", s.Stage),
		fmt.Sprintf("%s could not handle a reply job's failure record in %d attempts; the record waits in the unhandled queue",
			manifest.WebSocketMessage.Name, ReplyJobFailureMaxReceives),
		r.UnhandledReplyJobFailures.MetricApproximateNumberOfMessagesVisible(
			&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Maximum")})))

	// Our own faults: every internal error answered to a client, or that
	// ended a reply, counts (the runtime's summary line, EMF).
	alarms = append(alarms, atLeastOnce("InternalErrorsAlarm", fmt.Sprintf("buddy-%s-internal-errors", s.Stage),
		fmt.Sprintf("A request or reply ended with an internal error at least once in %d minutes (%s/%s)",
			AlarmPeriodMinutes, manifest.MetricNamespace, manifest.MetricInternalErrors),
		buddyMetric(manifest.MetricInternalErrors, period)))
	conflicts := awscloudwatch.NewAlarm(stack, jsii.String("TransactionConflictsAlarm"), &awscloudwatch.AlarmProps{
		AlarmName: jsii.String(fmt.Sprintf("buddy-%s-transaction-conflicts", s.Stage)),
		AlarmDescription: jsii.String(fmt.Sprintf("At least %d DynamoDB transactions met a concurrent one on the same item in %d minutes (%s/%s); "+
			"each is retried, so a few are normal, this many is contention beyond one user's burst",
			TransactionConflictsThreshold, AlarmPeriodMinutes, manifest.MetricNamespace, manifest.MetricTransactionConflicts)),
		Metric:             buddyMetric(manifest.MetricTransactionConflicts, period),
		Threshold:          jsii.Number(TransactionConflictsThreshold),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	alarms = append(alarms, conflicts)

	// On-demand tables throttle too (a hot partition, the table's or the
	// account's maximum throughput), and a system error is DynamoDB's own
	// 500: both reach users as failed requests or retried writes.
	for _, t := range manifest.All {
		table, ops := r.Tables[t.ID], tableOperations(t)
		name := strings.ToLower(t.ID)
		alarms = append(alarms,
			atLeastOnce(t.ID+"TableThrottlesAlarm", fmt.Sprintf("buddy-%s-%s-table-throttles", s.Stage, name),
				fmt.Sprintf("DynamoDB throttled a request to the %s table at least once in %d minutes (ThrottledRequests of %s)",
					name, AlarmPeriodMinutes, strings.Join(ops, ", ")),
				tableMetricSum(table, "ThrottledRequests", ops, period)),
			atLeastOnce(t.ID+"TableSystemErrorsAlarm", fmt.Sprintf("buddy-%s-%s-table-system-errors", s.Stage, name),
				fmt.Sprintf("DynamoDB failed a request to the %s table with a system error at least once in %d minutes (SystemErrors of %s)",
					name, AlarmPeriodMinutes, strings.Join(ops, ", ")),
				tableMetricSum(table, "SystemErrors", ops, period)),
		)
	}

	alarms = append(alarms, awscloudwatch.NewAlarm(stack, jsii.String("ModelErrorRateAlarm"), &awscloudwatch.AlarmProps{
		AlarmName: jsii.String(fmt.Sprintf("buddy-%s-model-error-rate", s.Stage)),
		AlarmDescription: jsii.String(fmt.Sprintf("More than %g%% of Claude calls failed in %d minutes (%s/%s over %s)",
			s.ModelErrorRatePercent, AlarmPeriodMinutes, manifest.MetricNamespace, manifest.MetricModelErrors, manifest.MetricModelRequests)),
		Metric: awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String(ModelErrorRateExpression),
			UsingMetrics: &map[string]awscloudwatch.IMetric{
				"requests": buddyMetric(manifest.MetricModelRequests, period),
				"errors":   buddyMetric(manifest.MetricModelErrors, period),
			},
			Label:  jsii.String("model error rate (%)"),
			Period: period,
		}),
		Threshold:          jsii.Number(s.ModelErrorRatePercent),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	}))
	for _, a := range alarms {
		a.AddAlarmAction(action)
	}
	return topic, alarms
}

// buddyMetric is the Sum of one of the runtime's EMF metrics (namespace
// Buddy, no dimensions).
func buddyMetric(name string, period awscdk.Duration) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace: jsii.String(manifest.MetricNamespace), MetricName: jsii.String(name),
		Period: period, Statistic: jsii.String("Sum"),
	})
}
