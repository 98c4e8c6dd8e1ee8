package buddy_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"

	"github.com/p2/buddy/lambda/manifest"
)

func functionDirs() []string {
	var dirs []string
	for _, fn := range manifest.Functions {
		dirs = append(dirs, fn.Dir)
	}
	return dirs
}

// resources returns the template's resources of one type by logical id.
func resources(tmpl map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range tmpl["Resources"].(map[string]any) {
		if m := r.(map[string]any); m["Type"] == typ {
			out[id] = m
		}
	}
	return out
}

func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// resource returns the resource with the logical id, failing the test if absent.
func resource(t *testing.T, tmpl map[string]any, id string) map[string]any {
	t.Helper()
	r, ok := tmpl["Resources"].(map[string]any)[id].(map[string]any)
	if !ok {
		t.Fatalf("no resource %s", id)
	}
	return r
}

// logicalID is the logical id of a construct's CloudFormation resource.
func logicalID(stack awscdk.Stack, c constructs.IConstruct) string {
	cfn, ok := c.Node().DefaultChild().(awscdk.CfnElement)
	if !ok {
		panic(fmt.Sprintf("%s has no CloudFormation resource", *c.Node().Path()))
	}
	return stack.Resolve(stack.GetLogicalId(cfn)).(string)
}

// render makes intrinsic functions readable and comparable:
// {"Ref":"X"} is "${X}", {"Fn::GetAtt":["X","Arn"]} is "${X.Arn}" and
// Fn::Join is the concatenation.
func render(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 1 {
			if ref, ok := v["Ref"].(string); ok {
				return "${" + ref + "}"
			}
			if ga, ok := v["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
				return fmt.Sprintf("${%v.%v}", ga[0], ga[1])
			}
			if j, ok := v["Fn::Join"].([]any); ok && len(j) == 2 {
				parts := []string{}
				for _, p := range j[1].([]any) {
					parts = append(parts, fmt.Sprint(render(p)))
				}
				return strings.Join(parts, j[0].(string))
			}
		}
		out := map[string]any{}
		for k, x := range v {
			out[k] = render(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = render(x)
		}
		return out
	}
	return v
}

// list turns a scalar or a list (IAM's Action and Resource) into a list.
func list(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

func strs(v any) []string {
	var out []string
	for _, x := range list(v) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// equal reports a mismatch of got and want (compared as JSON values).
func equal(t *testing.T, what string, got, want any) bool {
	t.Helper()
	g, w := jsonValue(got), jsonValue(want)
	if !reflect.DeepEqual(g, w) {
		gb, _ := json.MarshalIndent(g, "", "  ")
		wb, _ := json.MarshalIndent(w, "", "  ")
		t.Errorf("%s:\n got %s\nwant %s", what, gb, wb)
		return false
	}
	return true
}

func jsonValue(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
