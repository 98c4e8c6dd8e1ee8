package devserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/p2/buddy/lambda/dev/fakelambda"
)

// function is one Lambda function as the gateways see it: a JSON payload
// in, a JSON payload out. Going through JSON, as the Lambda runtime does,
// means a field that would not survive the trip to AWS does not survive
// here either.
type function struct {
	name    string
	timeout time.Duration
	handler func(ctx context.Context, payload []byte) ([]byte, error)
}

// typed adapts a handler with a typed event, as lambda.Start does.
func typed[E, R any](h func(context.Context, E) (R, error)) func(context.Context, []byte) ([]byte, error) {
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		var ev E
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("decode event: %w", err)
		}
		r, err := h(ctx, ev)
		if err != nil {
			return nil, err
		}
		return json.Marshal(r)
	}
}

// errTimedOut is Lambda's "Task timed out" failure.
var errTimedOut = errors.New("task timed out")

// invoker runs functions the way Lambda does: each invocation with its own
// request id and deadline, a panic or a timeout failing only that
// invocation. It tracks every invocation so shutdown can wait for them.
type invoker struct {
	base   context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
}

func newInvoker(log *slog.Logger) *invoker {
	ctx, cancel := context.WithCancel(context.Background())
	return &invoker{base: ctx, cancel: cancel, log: log}
}

type result struct {
	out []byte
	err error
}

// start begins a synchronous (RequestResponse) invocation; the caller
// decides how long to wait for its result, as API Gateway does with its
// integration timeout.
func (iv *invoker) start(fn *function, payload []byte) <-chan result {
	ch := make(chan result, 1)
	if !iv.track() {
		ch <- result{err: errors.New("devserver: shutting down")}
		return ch
	}
	go func() {
		defer iv.wg.Done()
		ch <- iv.run(fn, payload)
	}()
	return ch
}

// dispatch is an asynchronous (Event) invocation: accepted at once, run in
// the background, never retried (the stack sets the function's async
// retries to zero). The Lambda API in front of it (fakelambda) has
// already enforced Lambda's payload limit.
func (iv *invoker) dispatch(fn *function, payload []byte) error {
	if !iv.track() {
		return errors.New("devserver: shutting down")
	}
	go func() {
		defer iv.wg.Done()
		_ = iv.run(fn, payload)
	}()
	return nil
}

func (iv *invoker) track() bool {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.closed {
		return false
	}
	iv.wg.Add(1)
	return true
}

func (iv *invoker) run(fn *function, payload []byte) result {
	requestID := fakelambda.NewRequestID()
	ctx, cancel := context.WithTimeout(iv.base, fn.timeout)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       requestID,
		InvokedFunctionArn: "arn:aws:lambda:local:000000000000:function:" + fn.name,
	})
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				iv.log.Error("function panicked", "function", fn.name, "requestId", requestID,
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				done <- result{err: fmt.Errorf("panic: %v", p)}
			}
		}()
		out, err := fn.handler(ctx, payload)
		done <- result{out: out, err: err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		// Lambda freezes the sandbox at the deadline; a handler that ignores
		// its context cannot be stopped here, only reported.
		select {
		case res = <-done:
		case <-time.After(time.Second):
			res = result{err: fmt.Errorf("%w after %s", errTimedOut, fn.timeout)}
		}
	}
	if res.err != nil {
		iv.log.Error("function error", "function", fn.name, "requestId", requestID, "error", res.err.Error())
	}
	return res
}

// close refuses new invocations, waits up to grace for running ones, then
// cancels their contexts and waits up to another grace.
func (iv *invoker) close(grace time.Duration) error {
	iv.mu.Lock()
	iv.closed = true
	iv.mu.Unlock()
	done := make(chan struct{})
	go func() { iv.wg.Wait(); close(done) }()
	select {
	case <-done:
		iv.cancel()
		return nil
	case <-time.After(grace):
	}
	iv.cancel()
	select {
	case <-done:
		return nil
	case <-time.After(grace):
		return errors.New("devserver: function invocations still running after shutdown")
	}
}
