// Package rie runs a Lambda function's bootstrap under AWS's Lambda
// Runtime Interface Emulator (aws-lambda-rie, pinned as a Go tool in
// go.mod), which runs it as Lambda's provided runtimes do: it passes the
// environment on, serves the Runtime API the bootstrap polls, reports
// init and invocation the way Lambda logs them, and answers invocations on
// POST /2015-03-31/functions/function/invocations.
//
// Each Start is one execution environment on free loopback ports: Invoke
// it, read what it logged, Stop it. The emulator starts the bootstrap at
// the first invocation (a cold start), not at Start.
package rie

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/p2/buddy/lambda/dev/internal/devproc"
)

// Module and Command name the emulator; go.mod pins the version.
const (
	Module  = "github.com/aws/aws-lambda-runtime-interface-emulator"
	Command = "aws-lambda-rie"
)

// InvokePath is where the emulator takes invocations.
const InvokePath = "/2015-03-31/functions/function/invocations"

const (
	// portAttempts bounds retries when a picked free port was taken by
	// someone else before the emulator could bind it.
	portAttempts = 3
	// pollInterval paces the readiness calls; the emulator, a Go
	// program, listens within milliseconds.
	pollInterval = 5 * time.Millisecond
	// maxOutput bounds the output kept for the caller; a function that
	// logs more keeps its first maxOutput bytes, where init is reported.
	maxOutput = 8 << 20
)

var (
	binMu sync.Mutex
	bins  = map[string]string{} // module root → binary
)

// Binary builds the emulator pinned in root's go.mod (go tool -n, which
// compiles it once into the build cache) and returns its path.
func Binary(ctx context.Context, root string) (string, error) {
	binMu.Lock()
	defer binMu.Unlock()
	if b, ok := bins[root]; ok {
		return b, nil
	}
	out, err := goCmd(ctx, root, "tool", "-n", Command)
	if err != nil {
		return "", fmt.Errorf("rie: build %s (pinned in go.mod's tool block): %w", Command, err)
	}
	b := strings.TrimSpace(string(out))
	bins[root] = b
	return b, nil
}

// Version is the emulator's version as root's go.mod pins it.
func Version(ctx context.Context, root string) (string, error) {
	out, err := goCmd(ctx, root, "list", "-m", "-f", "{{.Version}}", Module)
	if err != nil {
		return "", fmt.Errorf("rie: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func goCmd(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Options say what to run.
type Options struct {
	// RIE is the emulator binary (Binary).
	RIE string
	// Bootstrap is the executable to run as the function, in its own
	// directory (Lambda's task root).
	Bootstrap string
	// Env is the function's whole environment: the emulator passes its
	// own on, adding AWS_LAMBDA_RUNTIME_API. AWS_LAMBDA_FUNCTION_TIMEOUT
	// (seconds) sets the invocation deadline, 300 when unset.
	Env []string
	// Output, when set, also receives everything the emulator and the
	// function write.
	Output io.Writer
}

// Function is one execution environment under the emulator.
type Function struct {
	url  string
	cmd  *exec.Cmd
	out  *output
	done chan struct{} // closed when the emulator has exited
	// waitErr is valid once done is closed.
	waitErr error

	invokeMu sync.Mutex // the emulator runs one invocation at a time
	client   *http.Client
	stopOnce sync.Once
	stopErr  error
}

// Start runs the emulator with o.Bootstrap and returns once it answers
// HTTP on its port. Only ctx bounds the wait.
func Start(ctx context.Context, o Options) (*Function, error) {
	if o.RIE == "" || o.Bootstrap == "" {
		return nil, errors.New("rie: the emulator and a bootstrap are required")
	}
	boot, err := filepath.Abs(o.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("rie: %w", err)
	}
	if _, err := os.Stat(boot); err != nil {
		return nil, fmt.Errorf("rie: bootstrap: %w", err)
	}
	for attempt := 1; ; attempt++ {
		f, err := start(ctx, o, boot)
		if err == nil {
			return f, nil
		}
		if attempt == portAttempts || !errors.Is(err, errAddrInUse) {
			return nil, err
		}
	}
}

var errAddrInUse = errors.New("address in use")

func start(ctx context.Context, o Options, boot string) (*Function, error) {
	// The emulator cannot be told to pick its ports, and announces
	// neither, so they are picked here; someone may take one before it
	// binds, which the retry in Start absorbs.
	port, err := devproc.FreePort()
	if err != nil {
		return nil, fmt.Errorf("rie: %w", err)
	}
	apiPort, err := devproc.FreePort()
	if err != nil {
		return nil, fmt.Errorf("rie: %w", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(o.RIE,
		"--runtime-interface-emulator-address", addr,
		"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(apiPort),
		boot)
	// The emulator runs the bootstrap in its own working directory.
	cmd.Dir = filepath.Dir(boot)
	cmd.Env = o.Env
	cmd.SysProcAttr = devproc.SysProcAttr()
	f := &Function{
		url:    "http://" + addr,
		cmd:    cmd,
		out:    newOutput(o.Output),
		done:   make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{DisableCompression: true}},
	}
	// One writer for both streams: os/exec then copies them from a single
	// pipe in one goroutine, in order.
	cmd.Stdout, cmd.Stderr = f.out, f.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("rie: start %s: %w", o.RIE, err)
	}
	go func() {
		f.waitErr = cmd.Wait()
		close(f.done)
	}()
	if err := f.waitReady(ctx, port); err != nil {
		_ = f.Stop()
		return nil, err
	}
	return f, nil
}

// waitReady polls the emulator's HTTP server with a request it answers
// 404 (no path but the invocations one is served, and that one would
// start the bootstrap) until it answers from this process.
func (f *Function) waitReady(ctx context.Context, port int) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url+"/", nil)
		if err != nil {
			return err
		}
		resp, err := f.client.Do(req)
		if err == nil {
			resp.Body.Close()
			// Someone else's server on the port answers too; only ours
			// will do.
			var ours bool
			if ours, err = devproc.ListensOn(f.cmd.Process.Pid, port); ours {
				return nil
			}
			if err == nil {
				err = fmt.Errorf("port %d answers, but not from the emulator's process %d", port, f.cmd.Process.Pid)
			}
		}
		select {
		case <-f.done:
			out := f.out.String()
			if strings.Contains(out, "address already in use") {
				return fmt.Errorf("rie: %s: %w; output:\n%s", f.url, errAddrInUse, out)
			}
			return fmt.Errorf("rie: exited before answering (%v); output:\n%s", f.waitErr, out)
		case <-ctx.Done():
			return fmt.Errorf("rie: no answer on %s (%v; last error: %v); output:\n%s", f.url, ctx.Err(), err, f.out.String())
		case <-t.C:
		}
	}
}

// URL is the emulator's base URL.
func (f *Function) URL() string { return f.url }

// Response is the emulator's answer to an invocation.
type Response struct {
	// Status is 200 for a function that answered, its result or its error
	// (see FunctionError); 502 when init or the runtime failed.
	Status int
	Body   []byte
}

// FunctionError decodes the error a function returned ({"errorType",
// "errorMessage"}, as Lambda reports it); ok is false for a result.
func (r Response) FunctionError() (errorType, message string, ok bool) {
	var e struct {
		ErrorType    *string `json:"errorType"`
		ErrorMessage *string `json:"errorMessage"`
	}
	if json.Unmarshal(r.Body, &e) != nil || e.ErrorType == nil || e.ErrorMessage == nil {
		return "", "", false
	}
	return *e.ErrorType, *e.ErrorMessage, true
}

// Invoke runs one invocation with payload and returns the emulator's
// answer. Like one Lambda execution environment, the emulator takes one
// invocation at a time, so concurrent calls wait their turn; only ctx
// bounds the wait (the function's own deadline is
// AWS_LAMBDA_FUNCTION_TIMEOUT).
func (f *Function) Invoke(ctx context.Context, payload []byte) (Response, error) {
	f.invokeMu.Lock()
	defer f.invokeMu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url+InvokePath, bytes.NewReader(payload))
	if err != nil {
		return Response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("rie: invoke: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, fmt.Errorf("rie: invoke: %w", err)
	}
	return Response{Status: resp.StatusCode, Body: body}, nil
}

// The emulator logs the init phase as Lambda does: INIT START before it
// execs the bootstrap, INIT RTDONE when the runtime first asks for work
// (or dies), INIT REPORT with the duration in between.
var (
	initReport = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
	initDone   = regexp.MustCompile(`INIT RTDONE\(status: (\w+)\)`)
)

// ErrInitFailed: the bootstrap did not finish its init.
var ErrInitFailed = errors.New("rie: init failed")

// InitDuration is the init duration the emulator reported for the first
// init, as Lambda's "Init Duration": from just before it started the
// bootstrap to the bootstrap's first request for work. It waits for the
// report (written as the first invocation starts), or the emulator's
// exit, or ctx.
func (f *Function) InitDuration(ctx context.Context) (time.Duration, error) {
	var d time.Duration
	var failed string
	err := f.out.wait(ctx, f.done, func(out string) bool {
		m := initReport.FindStringSubmatchIndex(out)
		if m == nil {
			return false
		}
		if st := initDone.FindStringSubmatch(out[:m[0]]); st == nil || st[1] != "success" {
			failed = "status " + fmt.Sprint(st)
			return true
		}
		ms, err := strconv.ParseFloat(out[m[2]:m[3]], 64)
		if err != nil {
			failed = err.Error()
			return true
		}
		d = time.Duration(ms * float64(time.Millisecond))
		return true
	})
	if err != nil {
		return 0, err
	}
	if failed != "" {
		return 0, fmt.Errorf("%w (%s); output:\n%s", ErrInitFailed, failed, f.out.String())
	}
	return d, nil
}

// Output is what the emulator and the function wrote so far.
func (f *Function) Output() string { return f.out.String() }

// WaitOutput waits until done holds for the output, the emulator exits,
// or ctx ends: for log lines written after an invocation answered.
func (f *Function) WaitOutput(ctx context.Context, done func(string) bool) error {
	return f.out.wait(ctx, f.done, done)
}

// RuntimePID is the process id of the running bootstrap: the emulator's
// child once an invocation has started it.
func (f *Function) RuntimePID() (int, error) {
	kids, err := devproc.Children(f.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	if len(kids) == 0 {
		return 0, errors.New("rie: no runtime process (not started yet, or exited)")
	}
	return kids[0], nil
}

// Stop kills the bootstrap and the emulator and waits for the emulator
// to exit; safe to call more than once. The emulator starts the bootstrap
// in a process group of its own, so that group is killed first, then the
// emulator's. Where processes cannot be listed (not Linux) the bootstrap
// is left to end on its own, which it does at its next Runtime API call.
func (f *Function) Stop() error {
	f.stopOnce.Do(func() {
		kids, _ := devproc.Children(f.cmd.Process.Pid)
		var errs []error
		for _, pid := range kids {
			errs = append(errs, devproc.KillGroupOf(pid))
		}
		if err := devproc.KillGroup(f.cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, err)
		}
		<-f.done
		f.client.CloseIdleConnections()
		f.stopErr = errors.Join(errs...)
	})
	return f.stopErr
}

// output keeps what the processes write and wakes waiters at each write.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	full    bool
	tee     io.Writer
	changed chan struct{} // closed and replaced at every write
}

func newOutput(tee io.Writer) *output {
	return &output{tee: tee, changed: make(chan struct{})}
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tee != nil {
		_, _ = o.tee.Write(p)
	}
	if room := maxOutput - o.buf.Len(); room > 0 {
		o.buf.Write(p[:min(len(p), room)])
	} else if !o.full {
		o.full = true
	}
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.full {
		return o.buf.String() + "\n[output truncated]"
	}
	return o.buf.String()
}

// wait checks done against the output at every write until it holds,
// exited closes (checked once more after it), or ctx ends.
func (o *output) wait(ctx context.Context, exited <-chan struct{}, done func(string) bool) error {
	for {
		o.mu.Lock()
		changed := o.changed
		s := o.buf.String()
		o.mu.Unlock()
		if done(s) {
			return nil
		}
		select {
		case <-changed:
		case <-exited:
			if done(o.String()) {
				return nil
			}
			return fmt.Errorf("rie: the emulator exited; output:\n%s", o.String())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
