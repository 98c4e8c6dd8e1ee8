package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"time"

	"github.com/p2/buddy/lambda/dev/apigwfixtures"
	"github.com/p2/buddy/lambda/dev/rie"
	"github.com/p2/buddy/lambda/dev/standins"
	"github.com/p2/buddy/lambda/manifest"
)

// tablePrefix names the benchmark's tables, local or not.
const tablePrefix = "buddy-bench-"

// Runtimes of the cold start comparison.
const (
	RuntimeGo     = "go"
	RuntimeNode   = "node"
	RuntimePython = "python"
)

// Contender is one bootstrap whose init the benchmark times.
type Contender struct {
	Runtime   string // RuntimeGo, RuntimeNode or RuntimePython
	Name      string // the function name, or the peer's
	Bootstrap string // the executable the emulator runs, in its task root
	Env       []string
	Event     []byte // the first invocation
}

// Sample is one cold start.
type Sample struct {
	// Ready is the init duration the emulator reported: from just before
	// it started the bootstrap to the bootstrap's first request for work.
	Ready  time.Duration
	Answer []byte // the first invocation's response
}

// RunCold starts c once under the emulator rieBin (a fresh execution
// environment), invokes it with its first event, takes the init duration
// the emulator reports, then stops it. The first invocation must answer:
// a function that fails it did not really start.
func RunCold(ctx context.Context, rieBin string, c Contender) (Sample, error) {
	f, err := rie.Start(ctx, rie.Options{RIE: rieBin, Bootstrap: c.Bootstrap, Env: c.Env})
	if err != nil {
		return Sample{}, fmt.Errorf("%s: %w", c.Name, err)
	}
	defer f.Stop()
	// No deadline of its own: a busy machine is slow, not broken; the
	// caller's context bounds the run.
	resp, err := f.Invoke(ctx, c.Event)
	if err != nil {
		return Sample{}, fmt.Errorf("%s: %w\n%s", c.Name, err, f.Output())
	}
	if typ, msg, bad := resp.FunctionError(); bad || resp.Status != http.StatusOK {
		return Sample{}, fmt.Errorf("%s: first invocation answered %d %s %s: %s\n%s", c.Name, resp.Status, typ, msg, resp.Body, f.Output())
	}
	d, err := f.InitDuration(ctx)
	if err != nil {
		return Sample{}, fmt.Errorf("%s: %w", c.Name, err)
	}
	return Sample{Ready: d, Answer: resp.Body}, nil
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
func RunColdStarts(ctx context.Context, rieBin string, cs []Contender, runs, warmup int, progress io.Writer) (*ColdStarts, error) {
	res := &ColdStarts{Runtime: map[string]string{}, Samples: map[string][]float64{}, Answers: map[string][]byte{}}
	for _, c := range cs {
		res.Runtime[c.Name] = c.Runtime
	}
	for round := 0; round < warmup+runs; round++ {
		for _, c := range cs {
			s, err := RunCold(ctx, rieBin, c)
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
// Buddy configuration, with every AWS endpoint on a loopback stand-in.
type Env struct {
	Home   string // an empty directory: no ~/.aws files to read
	Stands *standins.Set
}

// FunctionEnv is the environment of one function as Lambda and the stack
// would set it, with the stand-ins' endpoints, so the init timed is the
// one AWS runs (standins.Set.FunctionEnv). vars adds runtime-specific
// variables.
func (e Env) FunctionEnv(fn manifest.Function, taskRoot, handler string, vars map[string]string) []string {
	return e.Stands.FunctionEnv(fn, standins.Code{Home: e.Home, TaskRoot: taskRoot, Handler: handler, Vars: vars})
}

// GoContenders are the six functions, each binary run as Lambda's
// provided.al2023 runtime runs bootstrap.
func (e Env) GoContenders(bins map[string]string) []Contender {
	var cs []Contender
	for _, fn := range manifest.Functions {
		bin, ok := bins[fn.Dir]
		if !ok {
			continue
		}
		cs = append(cs, Contender{
			Runtime:   RuntimeGo,
			Name:      fn.Name,
			Bootstrap: bin,
			Env:       e.FunctionEnv(fn, filepath.Dir(bin), "bootstrap", nil),
			Event:     FirstEvent(fn),
		})
	}
	return cs
}

// NodeContender is the Node.js peer in dir (bench/peers/node), run by its
// bootstrap script with node.
func (e Env) NodeContender(node, dir string) Contender {
	return e.peerContender(RuntimeNode, dir, "index.handler", map[string]string{
		"AWS_EXECUTION_ENV": "AWS_Lambda_nodejs22.x",
		"BENCH_NODE":        node,
	})
}

// PythonContender is the Python peer in dir (bench/peers/python), run by
// its bootstrap script with python.
func (e Env) PythonContender(python, dir string) Contender {
	return e.peerContender(RuntimePython, dir, "handler.handler", map[string]string{
		"AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
		// Lambda's code directory is read-only, so no bytecode is cached
		// for the handler there either.
		"PYTHONDONTWRITEBYTECODE": "1",
		"BENCH_PYTHON":            python,
	})
}

// peerContender is the peer of runtime in dir, standing in for the
// websocket-message function: its bootstrap script, its managed runtime's
// handler setting and variables, and the function's first event.
func (e Env) peerContender(runtime, dir, handler string, vars map[string]string) Contender {
	return Contender{
		Runtime:   runtime,
		Name:      runtime + "-peer",
		Bootstrap: filepath.Join(dir, "bootstrap"),
		Env:       e.FunctionEnv(manifest.WebSocketMessage, dir, handler, vars),
		Event:     FirstEvent(manifest.WebSocketMessage),
	}
}

// firstConnection is the connection id of the first events; no client
// holds it, so the functions answer without a store row to find.
const firstConnection = "YmVuY2htYXJrAA="

// FirstEvent is a realistic first invocation for fn: an API Gateway event
// of one of its routes, from aws-lambda-go's real payloads
// (lambda/dev/apigwfixtures). It carries no token and names no stored
// connection, so each function answers at once after one store call at
// most.
func FirstEvent(fn manifest.Function) []byte {
	httpEvent := func(route, path string) []byte {
		return apigwfixtures.HTTP{RouteKey: route, Path: path, Claims: map[string]string{"sub": "bench-user"}}.Event().JSON()
	}
	switch fn.Name {
	case manifest.WebSocketConnect.Name:
		return apigwfixtures.Connect(firstConnection, "").JSON()
	case manifest.WebSocketDisconnect.Name:
		return apigwfixtures.Disconnect(firstConnection).JSON()
	case manifest.WebSocketMessage.Name:
		return apigwfixtures.Message(firstConnection, manifest.RoutePing, `{"action":"ping"}`).JSON()
	case manifest.ConversationAPI.Name:
		return httpEvent(manifest.RouteListConversations, "/conversations")
	case manifest.PromptCRUD.Name:
		return httpEvent(manifest.RouteListPrompts, "/prompts")
	default:
		return httpEvent(manifest.RouteGetUsage, "/usage")
	}
}
