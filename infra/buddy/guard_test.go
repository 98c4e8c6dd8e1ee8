package buddy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// guardException is one entry of infra/cfn-guard-exceptions.json.
type guardException struct {
	Rule      string   `json:"rule"`
	Control   string   `json:"control"`
	Stages    []string `json:"stages"`
	Resources string   `json:"resources"`
	Reason    string   `json:"reason"`
	re        *regexp.Regexp
	used      bool
}

// guardFinding is a resource failing a Guard rule.
type guardFinding struct{ variant, stage, rule, resource string }

// TestControlTowerGuardRules runs the static cfn-guard binary with the AWS
// Control Tower proactive rules shipped in npm @cdklabs/cdk-validator-cfnguard
// over the synthesized templates. Each failure must be recorded with its
// reason in infra/cfn-guard-exceptions.json, and each recorded exception
// must still be needed.
func TestControlTowerGuardRules(t *testing.T) {
	pkg := nodeModule(t, "@cdklabs/cdk-validator-cfnguard")
	platform := map[string]string{"linux": "ubuntu", "darwin": "macos"}[runtime.GOOS]
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	guard := filepath.Join(pkg, "bin", platform, arch, "cfn-guard")
	if _, err := os.Stat(guard); err != nil {
		t.Fatalf("no cfn-guard for %s/%s in %s: %v", runtime.GOOS, runtime.GOARCH, pkg, err)
	}
	rules := filepath.Join(pkg, "rules", "control-tower", "cfn-guard")

	b, err := os.ReadFile(filepath.Join(root, "infra", "cfn-guard-exceptions.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Exceptions []*guardException }
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatalf("cfn-guard-exceptions.json: %v", err)
	}
	for _, e := range file.Exceptions {
		if e.re, err = regexp.Compile(e.Resources); err != nil {
			t.Fatalf("cfn-guard-exceptions.json: %s: %v", e.Rule, err)
		}
		if len(strings.TrimSpace(e.Reason)) < 20 || len(e.Stages) == 0 {
			t.Errorf("cfn-guard-exceptions.json: %s needs stages and a reason", e.Rule)
		}
	}

	args := []string{"validate", "--output-format", "json", "--show-summary", "none", "--structured"}
	byFile := map[string]string{}
	types := map[string]bool{}
	for _, v := range []string{"dev", "prod", "alt"} {
		s := synth(t, v)
		args = append(args, "--data", s.file)
		byFile[s.file] = v
		for _, r := range s.template["Resources"].(map[string]any) {
			types[r.(map[string]any)["Type"].(string)] = true
		}
	}
	selected, total := applicableRules(t, rules, types)
	t.Logf("%d of %d Control Tower rule files evaluate resource types of these templates", len(selected), total)
	for _, r := range selected {
		args = append(args, "--rules", r)
	}
	out, err := exec.Command(guard, args...).Output()
	// cfn-guard exits 19 when a rule fails; anything else is a failure to run.
	if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 19) {
		t.Fatalf("cfn-guard: %v\n%s", err, ee.Stderr)
	}
	var results []struct {
		Name         string            `json:"name"`
		NotCompliant []json.RawMessage `json:"not_compliant"`
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("cfn-guard output: %v", err)
	}
	if len(results) != len(byFile) {
		t.Fatalf("cfn-guard reported on %d templates, want %d", len(results), len(byFile))
	}

	var findings []guardFinding
	for _, r := range results {
		v := byFile[r.Name]
		for _, nc := range r.NotCompliant {
			var rule struct {
				Rule struct {
					Name string `json:"name"`
				} `json:"Rule"`
			}
			if err := json.Unmarshal(nc, &rule); err != nil || rule.Rule.Name == "" {
				t.Fatalf("cfn-guard: unexpected result %s", nc)
			}
			for _, id := range guardResources(nc) {
				findings = append(findings, guardFinding{v, synth(t, v).settings.Stage, rule.Rule.Name, id})
			}
		}
	}
	for _, f := range findings {
		i := slices.IndexFunc(file.Exceptions, func(e *guardException) bool {
			return e.Rule == f.rule && slices.Contains(e.Stages, f.stage) && e.re.MatchString(f.resource)
		})
		if i < 0 {
			t.Errorf("%s: %s fails Control Tower rule %s: fix it or record why in infra/cfn-guard-exceptions.json", f.variant, f.resource, f.rule)
			continue
		}
		file.Exceptions[i].used = true
	}
	for _, e := range file.Exceptions {
		if !e.used {
			t.Errorf("cfn-guard-exceptions.json: %s (%s) matches no finding any more: remove it", e.Rule, e.Control)
		}
	}
}

var cfnType = regexp.MustCompile(`AWS::[A-Za-z0-9]+::[A-Za-z0-9]+`)

// applicableRules lists the rule files that can fail on these templates:
// those naming one of their resource types, and any naming no type at all.
// A rule only ever reports on the types it names, so skipping the others
// (Redshift, EKS, ...) changes no result and makes the run a few times
// faster.
func applicableRules(t *testing.T, dir string, types map[string]bool) (selected []string, total int) {
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".guard" {
			return err
		}
		total++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		named := cfnType.FindAllString(string(b), -1)
		if len(named) == 0 || slices.ContainsFunc(named, func(n string) bool { return types[n] }) {
			selected = append(selected, path)
		}
		return nil
	})
	if err != nil || total == 0 {
		t.Fatalf("Control Tower rules in %s: %d files, %v", dir, total, err)
	}
	return selected, total
}

var resourcePath = regexp.MustCompile(`^/Resources/([^/]+)`)

// guardResources lists the logical ids a Guard result points at (the
// "path" of each check, wherever Guard nests it).
func guardResources(raw json.RawMessage) []string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil
	}
	seen := map[string]bool{}
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			if p, ok := x["path"].(string); ok {
				if m := resourcePath.FindStringSubmatch(p); m != nil {
					seen[m[1]] = true
				}
			}
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	walk(v)
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if len(ids) == 0 {
		ids = []string{fmt.Sprintf("(template-wide: %.80s)", raw)}
	}
	return ids
}
