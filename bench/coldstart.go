package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/p2/buddy/bench/runtimeapi"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/schema"
)

// tablePrefix names the benchmark's tables, local or not.
const tablePrefix = "buddy-bench-"

// Runtimes of the cold start comparison.
const (
	RuntimeGo     = "go"
	RuntimeNode   = "node"
	RuntimePython = "python"
)

// invocationDeadline is the Lambda deadline the first invocation carries
// (the function's own context), as a deployed function's timeout would.
const invocationDeadline = 15 * time.Second

// Contender is one process whose init the benchmark times.
type Contender struct {
	Runtime string // RuntimeGo, RuntimeNode or RuntimePython
	Name    string // the function name, or the peer's
	Argv    []string
	Dir     string
	Env     []string // complete environment, without AWS_LAMBDA_RUNTIME_API
	Event   []byte   // the first invocation
	// AllowError accepts a post to /error as the answer: the Go functions
	// get events whose store calls fail on purpose (only readiness is
	// timed), while a peer's handler must answer normally.
	AllowError bool
}

// Sample is one cold start.
type Sample struct {
	Ready  time.Duration // process start → first GET /next
	Answer []byte        // the first invocation's response or error body
	Error  bool          // the answer went to /error
}

// RunCold starts c once against a fresh Runtime API, times its init and
// waits for the answer to its first invocation, then kills it.
func RunCold(ctx context.Context, c Contender) (Sample, error) {
	api, err := runtimeapi.Start("arn:aws:lambda:eu-west-1:000000000000:function:"+c.Name, 1)
	if err != nil {
		return Sample{}, err
	}
	defer api.Close()
	id, err := api.Enqueue(runtimeapi.Invocation{Payload: c.Event, Timeout: invocationDeadline})
	if err != nil {
		return Sample{}, err
	}

	p, err := startProc(c.Argv, c.Dir, append(slices.Clone(c.Env), "AWS_LAMBDA_RUNTIME_API="+api.Addr))
	if err != nil {
		return Sample{}, fmt.Errorf("%s: start: %w", c.Name, err)
	}
	defer p.kill()
	out, done := p.out, p.done

	// No deadline of its own: a busy machine is slow, not broken; the
	// caller's context bounds the run.
	select {
	case <-api.Ready():
	case b := <-api.InitErrors():
		return Sample{}, fmt.Errorf("%s: init error: %s\n%s", c.Name, b, out)
	case <-done:
		return Sample{}, fmt.Errorf("%s: exited before asking for work (%v)\n%s", c.Name, p.waitErr, out)
	case <-ctx.Done():
		return Sample{}, ctx.Err()
	}
	s := Sample{Ready: api.ReadyAt().Sub(p.started)}

	select {
	case r := <-api.Results():
		if r.ID != id {
			return s, fmt.Errorf("%s: answered unknown invocation %q", c.Name, r.ID)
		}
		s.Answer, s.Error = r.Body, r.Err
	case <-done:
		return s, fmt.Errorf("%s: exited during its first invocation (%v)\n%s", c.Name, p.waitErr, out)
	case <-ctx.Done():
		return s, ctx.Err()
	}
	if s.Error && !c.AllowError {
		return s, fmt.Errorf("%s: first invocation failed: %s\n%s", c.Name, s.Answer, out)
	}
	return s, nil
}

// ColdStarts holds every timed sample, in milliseconds, by contender name.
type ColdStarts struct {
	Runtime map[string]string    // name → runtime
	Samples map[string][]float64 // name → ready times (ms)
	Answers map[string][]byte    // name → the last answer, for the report
}

// RunColdStarts runs warmup untimed rounds and then runs timed rounds; each
// round starts every contender once, in the given order, so that drift in
// the machine's load or caches spreads over all runtimes alike.
func RunColdStarts(ctx context.Context, cs []Contender, runs, warmup int, progress io.Writer) (*ColdStarts, error) {
	res := &ColdStarts{Runtime: map[string]string{}, Samples: map[string][]float64{}, Answers: map[string][]byte{}}
	for _, c := range cs {
		res.Runtime[c.Name] = c.Runtime
	}
	for round := 0; round < warmup+runs; round++ {
		for _, c := range cs {
			s, err := RunCold(ctx, c)
			if err != nil {
				return nil, err
			}
			res.Answers[c.Name] = s.Answer
			if round >= warmup {
				res.Samples[c.Name] = append(res.Samples[c.Name], ms(s.Ready))
			}
		}
		if progress != nil {
			fmt.Fprintf(progress, "\rcold start: round %d/%d", round+1, warmup+runs)
		}
	}
	if progress != nil {
		fmt.Fprintln(progress)
	}
	return res, nil
}

// Summary reduces a runtime's samples to p50/p95. For Go, whose six
// functions are timed separately, it reports the worst function at each
// percentile: a claim about "the Go functions" must hold for the slowest.
func (c *ColdStarts) Summary(runtime string) (ColdStart, bool) {
	var out ColdStart
	found := false
	names := make([]string, 0, len(c.Samples))
	for n := range c.Samples {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if c.Runtime[n] != runtime {
			continue
		}
		xs := c.Samples[n]
		p50, p95 := Percentile(xs, 50), Percentile(xs, 95)
		if !found || p50 > out.P50 {
			out.P50, out.WorstP50 = p50, n
		}
		if !found || p95 > out.P95 {
			out.P95, out.WorstP95 = p95, n
		}
		out.Runs = len(xs)
		found = true
	}
	out.P50, out.P95 = round(out.P50, 2), round(out.P95, 2)
	return out, found
}

// ByFunction is each contender's own p50/p95.
func (c *ColdStarts) ByFunction(runtime string) map[string]ColdStart {
	out := map[string]ColdStart{}
	for n, xs := range c.Samples {
		if c.Runtime[n] == runtime {
			out[n] = ColdStart{P50: round(Percentile(xs, 50), 2), P95: round(Percentile(xs, 95), 2), Runs: len(xs)}
		}
	}
	return out
}

// Env is what the contenders share: a Lambda-like environment plus the
// Buddy configuration. Endpoints is the loopback stub that answers every
// AWS call, so nothing a handler does at init or in its first invocation
// leaves the machine.
type Env struct {
	Endpoints string // base URL of the AWS stub
	Home      string // an empty directory: no ~/.aws files to read
}

// FunctionEnv is the environment of one function as Lambda and the stack
// would set it, with three loopback overrides: AWS_ENDPOINT_URL (the SDKs
// read it at init whether set or not), CONNECTIONS_ENDPOINT, and a JWT
// issuer on the stub. extra appends runtime-specific variables.
func (e Env) FunctionEnv(name, taskRoot, handler string, extra ...string) []string {
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"LANG=en_US.UTF-8",
		"TZ=:UTC",
		"HOME=" + e.Home,
		"LAMBDA_TASK_ROOT=" + taskRoot,
		"LAMBDA_RUNTIME_DIR=" + taskRoot,
		"_HANDLER=" + handler,
		"AWS_LAMBDA_FUNCTION_NAME=" + name,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + name,
		"AWS_LAMBDA_LOG_STREAM_NAME=2026/01/01/[$LATEST]0123456789abcdef",
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_REGION=eu-west-1",
		"AWS_DEFAULT_REGION=eu-west-1",
		"AWS_ACCESS_KEY_ID=ASIABENCHMARKEXAMPLE",
		"AWS_SECRET_ACCESS_KEY=benchmark/secret/access/key/not/a/real/one0",
		"AWS_SESSION_TOKEN=benchmark-session-token",
		"AWS_ENDPOINT_URL=" + e.Endpoints,
		config.JWTIssuer + "=" + e.Endpoints + "/issuer",
		config.JWTAudience + "=buddy-bench",
		config.ConnectionsEndpoint + "=" + e.Endpoints,
	}
	defaults := config.ModelDefaults()
	for _, k := range config.ModelKeys {
		if v, ok := defaults[k]; ok {
			env = append(env, k+"="+v)
		}
	}
	for _, t := range schema.All {
		env = append(env, t.EnvVar+"="+tablePrefix+t.ID)
	}
	return append(env, extra...)
}

// GoContenders are the six functions, each binary run as Lambda's
// provided.al2023 runtime runs bootstrap.
func (e Env) GoContenders(bins map[string]string) []Contender {
	var cs []Contender
	for _, fn := range schema.Functions {
		bin, ok := bins[fn.Dir]
		if !ok {
			continue
		}
		cs = append(cs, Contender{
			Runtime:    RuntimeGo,
			Name:       fn.Name,
			Argv:       []string{bin},
			Dir:        filepath.Dir(bin),
			Env:        e.FunctionEnv(fn.Name, filepath.Dir(bin), "bootstrap"),
			Event:      FirstEvent(fn),
			AllowError: true,
		})
	}
	return cs
}

// NodeContender is the Node.js peer in dir (bench/peers/node).
func (e Env) NodeContender(node, dir string) Contender {
	return Contender{
		Runtime: RuntimeNode,
		Name:    "node-peer",
		Argv:    []string{node, filepath.Join(dir, "bootstrap.mjs")},
		Dir:     dir,
		Env: e.FunctionEnv(schema.WebSocketMessage.Name, dir, "index.handler",
			"AWS_EXECUTION_ENV=AWS_Lambda_nodejs22.x"),
		Event: FirstEvent(schema.WebSocketMessage),
	}
}

// PythonContender is the Python peer in dir (bench/peers/python).
func (e Env) PythonContender(python, dir string) Contender {
	return Contender{
		Runtime: RuntimePython,
		Name:    "python-peer",
		Argv:    []string{python, filepath.Join(dir, "bootstrap.py")},
		Dir:     dir,
		// Lambda's code directory is read-only, so no bytecode is cached
		// for the handler there either.
		Env: e.FunctionEnv(schema.WebSocketMessage.Name, dir, "handler.handler",
			"AWS_EXECUTION_ENV=AWS_Lambda_python3.11", "PYTHONDONTWRITEBYTECODE=1"),
		Event: FirstEvent(schema.WebSocketMessage),
	}
}

// FirstEvent is a realistic first invocation for fn: an API Gateway event
// of one of its routes. It carries no valid token or connection, so the
// handler answers quickly without needing a store.
func FirstEvent(fn schema.Function) []byte {
	ws := func(route, eventType, body string) []byte {
		ev := map[string]any{
			"requestContext": map[string]any{
				"routeKey": route, "eventType": eventType, "connectionId": "YmVuY2htYXJrAA=",
				"requestId": runtimeapi.NewID(), "domainName": "127.0.0.1", "stage": "bench", "apiId": "bench",
				"requestTimeEpoch": time.Now().UnixMilli(),
			},
			"isBase64Encoded": false,
		}
		if body != "" {
			ev["body"] = body
		}
		b, _ := json.Marshal(ev)
		return b
	}
	httpEvent := func(method, path string) []byte {
		b, _ := json.Marshal(map[string]any{
			"version": "2.0", "routeKey": method + " " + path, "rawPath": path, "rawQueryString": "",
			"headers": map[string]string{"authorization": "Bearer x"},
			"requestContext": map[string]any{
				"http":       map[string]string{"method": method, "path": path, "sourceIp": "127.0.0.1"},
				"authorizer": map[string]any{"jwt": map[string]any{"claims": map[string]string{"sub": "bench-user"}}},
				"routeKey":   method + " " + path, "stage": "$default", "requestId": runtimeapi.NewID(),
			},
			"isBase64Encoded": false,
		})
		return b
	}
	switch fn.Name {
	case schema.WebSocketConnect.Name:
		return ws(schema.RouteConnect, "CONNECT", "")
	case schema.WebSocketDisconnect.Name:
		return ws(schema.RouteDisconnect, "DISCONNECT", "")
	case schema.WebSocketMessage.Name:
		return ws(schema.RoutePing, "MESSAGE", `{"action":"ping"}`)
	case schema.ConversationAPI.Name:
		return httpEvent("GET", "/conversations")
	case schema.PromptCRUD.Name:
		return httpEvent("GET", "/prompts")
	default:
		return httpEvent("GET", "/usage")
	}
}

// tail keeps the last max bytes a process wrote, for error reports.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
