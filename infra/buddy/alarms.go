package buddy

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
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

// newAlarms declares, for each function, an alarm on any error and on any
// throttle in five minutes, one on the model error rate, and two on the
// reply jobs' failure queues; all notify one SNS topic (subscribe with
// -c alarmEmail=... or later in the console).
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

	modelMetric := func(name string) awscloudwatch.Metric {
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(manifest.MetricNamespace), MetricName: jsii.String(name),
			Period: period, Statistic: jsii.String("Sum"),
		})
	}
	alarms = append(alarms, awscloudwatch.NewAlarm(stack, jsii.String("ModelErrorRateAlarm"), &awscloudwatch.AlarmProps{
		AlarmName: jsii.String(fmt.Sprintf("buddy-%s-model-error-rate", s.Stage)),
		AlarmDescription: jsii.String(fmt.Sprintf("More than %g%% of Claude calls failed in %d minutes (%s/%s over %s)",
			s.ModelErrorRatePercent, AlarmPeriodMinutes, manifest.MetricNamespace, manifest.MetricModelErrors, manifest.MetricModelRequests)),
		Metric: awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String(ModelErrorRateExpression),
			UsingMetrics: &map[string]awscloudwatch.IMetric{
				"requests": modelMetric(manifest.MetricModelRequests),
				"errors":   modelMetric(manifest.MetricModelErrors),
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
