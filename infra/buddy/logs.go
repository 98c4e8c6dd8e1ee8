package buddy

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"

	"github.com/p2/buddy/lambda/manifest"
)

// newLogGroups declares /aws/lambda/<name> for each function, with the
// stage's retention. Declaring them (instead of letting Lambda create them
// on first write) is what puts a retention on them without the legacy
// log-retention custom resource, and lets the role write to these groups
// only.
func newLogGroups(stack awscdk.Stack, s Settings) map[string]awslogs.LogGroup {
	groups := map[string]awslogs.LogGroup{}
	for _, fn := range manifest.Functions {
		groups[fn.Name] = newLogGroup(stack, constructID(fn.Dir)+"Logs", "/aws/lambda/"+fn.Name, s)
	}
	return groups
}

func newLogGroup(stack awscdk.Stack, id, name string, s Settings) awslogs.LogGroup {
	return awslogs.NewLogGroup(stack, jsii.String(id), &awslogs.LogGroupProps{
		LogGroupName:  jsii.String(name),
		Retention:     RetentionDays[s.LogRetentionDays],
		RemovalPolicy: removalPolicy(s),
	})
}
