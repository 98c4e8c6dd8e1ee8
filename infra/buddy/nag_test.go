package buddy_test

import (
	"fmt"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"
)

// TestNoUnsuppressedNagFindings: cdk-nag's AwsSolutions pack runs on every
// synth (Build adds it); a finding is an error or warning annotation, and
// every suppression (nag.go) carries its reason.
func TestNoUnsuppressedNagFindings(t *testing.T) {
	for _, v := range []string{"dev", "prod", "alt"} {
		s := synth(t, v)
		ann := assertions.Annotations_FromStack(s.stack)
		pattern := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
		for level, found := range map[string]*[]*cxapi.SynthesisMessage{
			"error":   ann.FindError(jsii.String("*"), pattern),
			"warning": ann.FindWarning(jsii.String("*"), pattern),
		} {
			for _, m := range *found {
				t.Errorf("%s: cdk-nag %s at %s: %s", v, level, *m.Id, fmt.Sprint(m.Entry.Data))
			}
		}
	}
}
