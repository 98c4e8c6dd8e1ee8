package buddy_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/p2/buddy/infra/buddy"
	"github.com/p2/buddy/infra/bundle"
)

var update = flag.Bool("update", false, "rewrite the golden templates in testdata/")

// Variants synthesized by the tests, each once per test binary. dev and
// prod are the stages (and the golden files); alt flips every switch the
// defaults leave off: Bedrock, an adopted secret, an external issuer, TOP_P
// instead of TEMPERATURE, an alarm email, reserved concurrency for the
// message function, other reply and upload limits. prod is given the web app's
// origin, which it cannot do without. The dev-* variants are dev with
// one context change each, as a pull request would make it (review_test.go).
var variants = map[string]map[string]any{
	"dev":             {"stage": "dev"},
	"prod":            {"stage": "prod", "corsAllowOrigins": prodOrigin},
	"dev-temperature": {"stage": "dev", "TEMPERATURE": "0.5"},
	"dev-issuer":      {"stage": "dev", "jwtIssuer": "https://login.example.com/", "jwtAudience": "buddy-web"},
	"dev-adopt":       {"stage": "dev", "adoptSecret": "true"},
	"alt": {
		"stage": "dev", "AI_PROVIDER": "bedrock", "adoptSecret": "true",
		"jwtIssuer": "https://login.example.com/", "jwtAudience": "buddy-web",
		"apiGatewayAccountRole": "false", "TOP_P": "0.9", "alarmEmail": "ops@example.com",
		"messageReservedConcurrency": "200", "MAX_INFLIGHT_REPLIES_PER_USER": "3", "ORPHAN_REPLY_GRACE_SECONDS": "300",
		"RESUMES_PER_MINUTE": "60", "MAX_PDF_PAGES": "50", "MAX_UPLOADS_PER_USER_DAY": 20,
	},
}

// prodOrigin is the web app's origin of the prod variant.
const prodOrigin = "https://chat.example.com"

// cliContext is what the CDK CLI adds to every synth, so the tests write
// the same template files as `cdk synth`.
var cliContext = map[string]any{
	"aws:cdk:enable-path-metadata":  true,
	"aws:cdk:enable-asset-metadata": true,
}

var (
	tmpDir string
	root   string
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		var err error
		if root, err = bundle.FindModuleRoot("."); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if tmpDir, err = os.MkdirTemp("", "buddy-infra-test-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmpDir)
		return m.Run()
	}()
	jsii.Close()
	os.Exit(code)
}

// stubBundler stands in for the handler builds: template tests must not
// depend on the handler code compiling (bundle_test.go tests the real
// bundler), and asset hashes are normalized in the golden files anyway.
type stubBundler struct{ dir string }

func (s stubBundler) Bundle() (map[string]string, error) {
	assets := map[string]string{}
	for _, dir := range functionDirs() {
		d := filepath.Join(s.dir, dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(d, "bootstrap"), []byte("stub "+dir), 0o755); err != nil {
			return nil, err
		}
		assets[dir] = d
	}
	return assets, nil
}

// cdkJSONContext is the "context" of the repository's cdk.json (feature
// flags), which the CLI passes to the app.
func cdkJSONContext(t testing.TB) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "cdk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("cdk.json: %v", err)
	}
	return cfg.Context
}

// newApp is a test app with cdk.json's context, the CLI's and ctx.
func newApp(t testing.TB, ctx map[string]any) awscdk.App {
	all := cdkJSONContext(t)
	for k, v := range cliContext {
		all[k] = v
	}
	for k, v := range ctx {
		all[k] = v
	}
	out, err := os.MkdirTemp(tmpDir, "cdk.out-")
	if err != nil {
		t.Fatal(err)
	}
	return buddy.NewApp(all, out)
}

// synthesized is one variant's stack and the template file it wrote.
type synthesized struct {
	stack    awscdk.Stack
	res      *buddy.Resources
	settings buddy.Settings
	raw      []byte
	template map[string]any
	file     string
}

var (
	synthMu    sync.Mutex
	synthCache = map[string]*synthesized{}
)

// synth synthesizes a variant once per test binary.
func synth(t testing.TB, variant string) *synthesized {
	t.Helper()
	synthMu.Lock()
	defer synthMu.Unlock()
	if s, ok := synthCache[variant]; ok {
		if s == nil {
			t.Fatalf("synth of %s failed earlier", variant)
		}
		return s
	}
	synthCache[variant] = nil
	ctx, ok := variants[variant]
	if !ok {
		t.Fatalf("no variant %s", variant)
	}
	app := newApp(t, ctx)
	stack, res, err := buddy.Build(app, stubBundler{dir: filepath.Join(tmpDir, "assets")})
	if err != nil {
		t.Fatalf("synth %s: %v", variant, err)
	}
	asm := app.Synth(nil)
	file := filepath.Join(*asm.Directory(), *stack.TemplateFile())
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := &synthesized{stack: stack, res: res, raw: raw, file: file}
	if err := json.Unmarshal(raw, &s.template); err != nil {
		t.Fatal(err)
	}
	s.settings, err = buddy.ParseSettings(func(k string) (string, bool) {
		v, ok := ctx[k]
		if !ok {
			return "", false
		}
		return fmt.Sprint(v), true
	})
	if err != nil {
		t.Fatal(err)
	}
	synthCache[variant] = s
	return s
}
