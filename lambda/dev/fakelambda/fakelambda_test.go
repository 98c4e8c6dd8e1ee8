package fakelambda_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/p2/buddy/lambda/dev/fakelambda"
	"github.com/p2/buddy/lambda/dev/internal/awstest"
	"github.com/p2/buddy/lambda/manifest"
)

// client is the SDK's Lambda client on srv, as a function built against
// the stand-in has it.
func client(srv *httptest.Server) *lambda.Client {
	return lambda.New(lambda.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		BaseEndpoint: aws.String(srv.URL),
		// A refusal should reach the test at once, not after retries.
		RetryMaxAttempts: 1,
	})
}

func TestInvokeAnswersLikeLambda(t *testing.T) {
	var got []fakelambda.Invocation
	srv := httptest.NewServer(fakelambda.New(func(_ context.Context, inv fakelambda.Invocation) error {
		switch inv.Function {
		case "broken":
			return errors.New("queue full")
		case "known":
			got = append(got, inv)
			return nil
		}
		return fakelambda.ErrUnknownFunction
	}))
	defer srv.Close()
	c := client(srv)
	tests := []struct {
		name     string
		function string
		typ      types.InvocationType
		payload  []byte
		status   int32
		wantErr  any
		accepted bool
	}{
		{"an Event invocation is accepted with 202 and handed over", "known", types.InvocationTypeEvent, []byte(`{"kind":"job"}`), 202, nil, true},
		{"an empty payload is accepted", "known", types.InvocationTypeEvent, nil, 202, nil, true},
		{"an unknown function is not found", "nobody", types.InvocationTypeEvent, []byte(`{}`), 0, new(*types.ResourceNotFoundException), false},
		{"a payload over 256 KB is refused", "known", types.InvocationTypeEvent, []byte(`"` + strings.Repeat("x", manifest.AsyncPayloadLimit) + `"`), 0, new(*types.RequestTooLargeException), false},
		{"a payload that is not JSON is refused", "known", types.InvocationTypeEvent, []byte(`{`), 0, new(*types.InvalidRequestContentException), false},
		{"a synchronous invocation is refused", "known", types.InvocationTypeRequestResponse, []byte(`{}`), 0, new(*types.InvalidParameterValueException), false},
		{"a failing callback is a service error", "broken", types.InvocationTypeEvent, []byte(`{}`), 0, new(*types.ServiceException), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(got)
			out, err := c.Invoke(t.Context(), &lambda.InvokeInput{FunctionName: aws.String(tt.function), InvocationType: tt.typ, Payload: tt.payload})
			if tt.wantErr != nil {
				if !errors.As(err, tt.wantErr) {
					t.Fatalf("error %v, want %T", err, tt.wantErr)
				}
			} else if err != nil || out.StatusCode != tt.status {
				t.Fatalf("Invoke = %+v, %v; want status %d", out, err, tt.status)
			}
			if accepted := len(got) > before; accepted != tt.accepted {
				t.Fatalf("handed over = %v, want %v", accepted, tt.accepted)
			}
			if tt.accepted && string(got[len(got)-1].Payload) != string(tt.payload) {
				t.Errorf("payload %q, want %q", got[len(got)-1].Payload, tt.payload)
			}
		})
	}
	if n := len(srv.Config.Handler.(*fakelambda.Server).Invocations()); n != 2 {
		t.Errorf("Invocations() lists %d, want the 2 accepted", n)
	}
}

func TestInvokeNeedsASignature(t *testing.T) {
	srv := httptest.NewServer(fakelambda.New(func(context.Context, fakelambda.Invocation) error { return nil }))
	defer srv.Close()
	resp := awstest.Do(t, http.MethodPost, srv.URL+"/2015-03-31/functions/f/invocations", `{}`, http.Header{"X-Amz-Invocation-Type": {"Event"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned Invoke answered %d, want 403", resp.StatusCode)
	}
}
