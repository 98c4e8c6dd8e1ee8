package buddy

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/p2/buddy/lambda/manifest"
)

// What the HTTP and the WebSocket API declare alike: the two CDK
// constructs have no common type, so these take and return the parts.

// integrationOf returns fn's Lambda integration, declaring it on first
// use: the routes of one function share one integration (and with it one
// permission for API Gateway to invoke the function).
func integrationOf[I any](declared map[string]I, fn manifest.Function, r *Resources, declare func(id *string, handler awslambda.IFunction) I) I {
	integ, ok := declared[fn.Name]
	if !ok {
		integ = declare(jsii.String(constructID(fn.Dir)+"Integration"), r.Functions[fn.Name])
		declared[fn.Name] = integ
	}
	return integ
}

// stageThrottle is the throttling of both APIs' stages.
func stageThrottle(s Settings) *awsapigatewayv2.ThrottleSettings {
	return &awsapigatewayv2.ThrottleSettings{
		RateLimit:  jsii.Number(s.ThrottleRate),
		BurstLimit: jsii.Number(s.ThrottleBurst),
	}
}

// newAccessLogs declares a stage's access log group and the settings that
// write one format line per request to it.
func newAccessLogs(stack awscdk.Stack, id, group, format string, s Settings) *accessLogSettings {
	logs := newLogGroup(stack, id, group, s)
	return &accessLogSettings{
		destination: awsapigatewayv2.NewLogGroupLogDestination(logs),
		format:      awsapigateway.AccessLogFormat_Custom(jsii.String(format)),
	}
}

// accessLogSettings implements awsapigatewayv2.IAccessLogSettings.
type accessLogSettings struct {
	destination awsapigatewayv2.IAccessLogDestination
	format      awsapigateway.AccessLogFormat
}

func (a *accessLogSettings) Destination() awsapigatewayv2.IAccessLogDestination { return a.destination }
func (a *accessLogSettings) Format() awsapigateway.AccessLogFormat              { return a.format }
