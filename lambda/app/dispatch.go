package app

import (
	"context"
	"fmt"

	lambdasvc "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/p2/buddy/lambda/chat"
)

// InvokeDispatcher starts a reply job as an asynchronous invocation of the
// message function itself. The stack sets the function's async retries to
// zero: a retried job would stream the same reply twice.
type InvokeDispatcher struct {
	Client   *lambdasvc.Client
	Function string
}

func (d *InvokeDispatcher) Dispatch(ctx context.Context, job chat.Job) error {
	payload, err := job.Payload()
	if err != nil {
		return err
	}
	out, err := d.Client.Invoke(ctx, &lambdasvc.InvokeInput{
		FunctionName:   &d.Function,
		InvocationType: types.InvocationTypeEvent,
		Payload:        payload,
	})
	if err != nil {
		return fmt.Errorf("invoke %s: %w", d.Function, err)
	}
	if out.StatusCode != 202 {
		return fmt.Errorf("invoke %s: status %d", d.Function, out.StatusCode)
	}
	return nil
}
