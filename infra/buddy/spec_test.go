package buddy_test

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// nodeModule is the path of an npm package installed by `make tools`.
func nodeModule(t testing.TB, pkg string) string {
	t.Helper()
	dir := filepath.Join(root, "infra", "node_modules", filepath.FromSlash(pkg))
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s is not installed: run make tools (npm ci --prefix infra)", dir)
	}
	return dir
}

// The CloudFormation resource specification of npm @aws-cdk/aws-service-spec
// (db.json.gz): resources with their properties and attributes, and the
// property types they refer to.
type specType struct {
	Type      string      `json:"type"`
	Element   *specType   `json:"element"`
	Types     []*specType `json:"types"`
	Reference *struct {
		Ref string `json:"$ref"`
	} `json:"reference"`
	AllowedValues []any `json:"allowedValues"`
}

type specProperty struct {
	Type          *specType   `json:"type"`
	Required      bool        `json:"required"`
	PreviousTypes []*specType `json:"previousTypes"`
}

type specShape struct {
	ID                 string                  `json:"$id"`
	CloudFormationType string                  `json:"cloudFormationType"`
	Name               string                  `json:"name"`
	Properties         map[string]specProperty `json:"properties"`
	Attributes         map[string]any          `json:"attributes"`
}

type serviceSpec struct {
	resources map[string]*specShape // by CloudFormation type
	types     map[string]*specShape // property types by $id
}

var (
	specOnce sync.Once
	spec     *serviceSpec
	specErr  error
)

func loadSpec(t *testing.T) *serviceSpec {
	t.Helper()
	path := filepath.Join(nodeModule(t, "@aws-cdk/aws-service-spec"), "db.json.gz")
	specOnce.Do(func() {
		f, err := os.Open(path)
		if err != nil {
			specErr = err
			return
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			specErr = err
			return
		}
		var db struct {
			Schema struct {
				Resource       struct{ Entities []*specShape } `json:"resource"`
				TypeDefinition struct{ Entities []*specShape } `json:"typeDefinition"`
			} `json:"schema"`
		}
		if specErr = json.NewDecoder(zr).Decode(&db); specErr != nil {
			return
		}
		spec = &serviceSpec{resources: map[string]*specShape{}, types: map[string]*specShape{}}
		for _, r := range db.Schema.Resource.Entities {
			spec.resources[r.CloudFormationType] = r
		}
		for _, d := range db.Schema.TypeDefinition.Entities {
			spec.types[d.ID] = d
		}
		if len(spec.resources) < 1000 {
			specErr = fmt.Errorf("%s holds only %d resource types", path, len(spec.resources))
		}
	})
	if specErr != nil {
		t.Fatalf("CloudFormation specification %s: %v", path, specErr)
	}
	return spec
}

// intrinsic reports whether v is a CloudFormation function or reference,
// whose value is only known at deploy time.
func intrinsic(v any) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	for k := range m {
		return k == "Ref" || strings.HasPrefix(k, "Fn::")
	}
	return false
}

// checkValue validates v against a property type; problems go to bad.
func (s *serviceSpec) checkValue(path string, v any, typ *specType, bad func(string, ...any)) {
	if intrinsic(v) || typ == nil {
		return
	}
	switch typ.Type {
	case "json":
	case "string", "date-time":
		switch x := v.(type) {
		case string:
			if len(typ.AllowedValues) > 0 && !slices.ContainsFunc(typ.AllowedValues, func(a any) bool { return fmt.Sprint(a) == x }) {
				bad("%s: %q is not one of %v", path, x, typ.AllowedValues)
			}
		case float64, bool:
		default:
			bad("%s: want a string, got %T", path, v)
		}
	case "number", "integer":
		switch x := v.(type) {
		case float64, int:
		case string:
			if _, err := strconv.ParseFloat(x, 64); err != nil {
				bad("%s: %q is not a number", path, x)
				return
			}
		default:
			bad("%s: want a number, got %T", path, v)
			return
		}
		if len(typ.AllowedValues) > 0 && !slices.ContainsFunc(typ.AllowedValues, func(a any) bool { return fmt.Sprint(a) == fmt.Sprint(v) }) {
			bad("%s: %v is not one of %v", path, v, typ.AllowedValues)
		}
	case "boolean":
		switch x := v.(type) {
		case bool:
		case string:
			if x != "true" && x != "false" {
				bad("%s: %q is not a boolean", path, x)
			}
		default:
			bad("%s: want a boolean, got %T", path, v)
		}
	case "array":
		l, ok := v.([]any)
		if !ok {
			bad("%s: want a list, got %T", path, v)
			return
		}
		for i, x := range l {
			s.checkValue(fmt.Sprintf("%s[%d]", path, i), x, typ.Element, bad)
		}
	case "map":
		m, ok := v.(map[string]any)
		if !ok {
			bad("%s: want a map, got %T", path, v)
			return
		}
		for k, x := range m {
			s.checkValue(path+"."+k, x, typ.Element, bad)
		}
	case "tag":
		if m, ok := v.(map[string]any); !ok || m["Key"] == nil {
			bad("%s: want a tag {Key, Value}, got %v", path, v)
		}
	case "ref":
		def, ok := s.types[typ.Reference.Ref]
		if !ok {
			bad("%s: the specification has no type %s", path, typ.Reference.Ref)
			return
		}
		m, ok := v.(map[string]any)
		if !ok {
			bad("%s: want a %s object, got %T", path, def.Name, v)
			return
		}
		s.checkObject(path, m, def.Properties, bad)
	case "union":
		for _, alt := range typ.Types {
			var errs []string
			s.checkValue(path, v, alt, func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) })
			if len(errs) == 0 {
				return
			}
		}
		bad("%s: %v matches none of the allowed types", path, v)
	default:
		bad("%s: unknown specification type %q", path, typ.Type)
	}
}

// checkObject validates property names, required properties and values.
func (s *serviceSpec) checkObject(path string, m map[string]any, defs map[string]specProperty, bad func(string, ...any)) {
	for name, p := range defs {
		if _, ok := m[name]; p.Required && !ok {
			bad("%s: required property %s is missing", path, name)
		}
	}
	for name, v := range m {
		p, ok := defs[name]
		if !ok {
			bad("%s: unknown property %s", path, name)
			continue
		}
		var errs []string
		s.checkValue(path+"."+name, v, p.Type, func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) })
		if len(errs) > 0 {
			// A value of an older type is still accepted.
			for _, prev := range p.PreviousTypes {
				var perrs []string
				s.checkValue(path+"."+name, v, prev, func(f string, a ...any) { perrs = append(perrs, fmt.Sprintf(f, a...)) })
				if len(perrs) == 0 {
					errs = nil
					break
				}
			}
		}
		for _, e := range errs {
			bad("%s", e)
		}
	}
}

var resourceKeys = []string{"Type", "Properties", "DependsOn", "Metadata", "Condition", "DeletionPolicy",
	"UpdateReplacePolicy", "UpdatePolicy", "CreationPolicy"}

var pseudoParameters = []string{"AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition",
	"AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix"}

// TestTemplatesMatchCloudFormationSpec checks every resource of every
// variant against the CloudFormation resource specification: known types,
// known properties with values of the right shape, required properties
// present, and every Ref, Fn::GetAtt and DependsOn pointing at something
// that exists.
func TestTemplatesMatchCloudFormationSpec(t *testing.T) {
	spec := loadSpec(t)
	for _, v := range []string{"dev", "prod", "alt"} {
		tmpl := synth(t, v).template
		bad := func(f string, a ...any) { t.Errorf(v+": "+f, a...) }
		res := tmpl["Resources"].(map[string]any)
		params, _ := tmpl["Parameters"].(map[string]any)
		for id, r := range res {
			r := r.(map[string]any)
			for k := range r {
				if !slices.Contains(resourceKeys, k) {
					bad("%s: unknown resource attribute %s", id, k)
				}
			}
			typ := fmt.Sprint(r["Type"])
			shape, ok := spec.resources[typ]
			if !ok {
				bad("%s: unknown resource type %s", id, typ)
				continue
			}
			p, _ := r["Properties"].(map[string]any)
			if p == nil {
				p = map[string]any{}
			}
			spec.checkObject(id+" ("+typ+")", p, shape.Properties, bad)
			for _, dep := range list(r["DependsOn"]) {
				if _, ok := res[fmt.Sprint(dep)]; dep != nil && !ok {
					bad("%s: DependsOn %v does not exist", id, dep)
				}
			}
		}
		// References anywhere in the template.
		var walk func(path string, x any)
		walk = func(path string, x any) {
			switch x := x.(type) {
			case map[string]any:
				if ref, ok := x["Ref"].(string); ok && len(x) == 1 {
					_, isRes := res[ref]
					_, isParam := params[ref]
					if !isRes && !isParam && !slices.Contains(pseudoParameters, ref) {
						bad("%s: Ref %s does not exist", path, ref)
					}
				}
				if ga, ok := x["Fn::GetAtt"].([]any); ok && len(x) == 1 && len(ga) == 2 {
					target, attr := fmt.Sprint(ga[0]), fmt.Sprint(ga[1])
					if r, ok := res[target].(map[string]any); !ok {
						bad("%s: Fn::GetAtt of missing %s", path, target)
					} else if shape, ok := spec.resources[fmt.Sprint(r["Type"])]; ok {
						if _, ok := shape.Attributes[attr]; !ok {
							bad("%s: %s (%s) has no attribute %s", path, target, r["Type"], attr)
						}
					}
				}
				for k, y := range x {
					walk(path+"."+k, y)
				}
			case []any:
				for i, y := range x {
					walk(fmt.Sprintf("%s[%d]", path, i), y)
				}
			}
		}
		walk("Resources", res)
		walk("Outputs", tmpl["Outputs"])
	}
}

// TestSpecCheckCatchesMistakes keeps the checker above honest.
func TestSpecCheckCatchesMistakes(t *testing.T) {
	spec := loadSpec(t)
	var got []string
	bad := func(f string, a ...any) { got = append(got, fmt.Sprintf(f, a...)) }
	fn := spec.resources["AWS::Lambda::Function"]
	spec.checkObject("fn", map[string]any{
		"Code":          map[string]any{"S3Bucket": "b", "S3Key": "k"},
		"Role":          "arn:aws:iam::role/x",
		"MemorySize":    "lots",
		"Timeout":       10,
		"Tracing":       map[string]any{"Mode": "Active"},
		"Architectures": []any{"arm64"},
		"PackageType":   "Tarball",
	}, fn.Properties, bad)
	spec.checkObject("table", map[string]any{"BillingMode": "PAY_PER_REQUEST"}, spec.resources["AWS::DynamoDB::Table"].Properties, bad)
	spec.checkObject("logs", map[string]any{"RetentionInDays": 10.0}, spec.resources["AWS::Logs::LogGroup"].Properties, bad)
	for _, want := range []string{
		`fn.MemorySize: "lots" is not a number`,
		"fn: unknown property Tracing",
		`fn.PackageType: "Tarball" is not one of`,
		"logs.RetentionInDays: 10 is not one of",
		"table: required property KeySchema is missing",
	} {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, want) }) {
			t.Errorf("the check misses %q; it reported %q", want, got)
		}
	}
}
