package fakesecrets_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/p2/buddy/lambda/dev/fakesecrets"
	"github.com/p2/buddy/lambda/dev/internal/awstest"
)

// client is the real SDK client, as a function builds it, pointed at srv.
func client(t *testing.T, srv *fakesecrets.Server) (*secretsmanager.Client, string) {
	t.Helper()
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return fakesecrets.NewClient(ts.URL), ts.URL
}

func TestTheSDKClientReadsSecrets(t *testing.T) {
	srv := fakesecrets.New()
	srv.Set("buddy-v1", `{"api_key":"sk-ant-one"}`)
	srv.Create("buddy-unset")
	c, _ := client(t, srv)
	ctx := context.Background()

	tests := []struct {
		name      string
		call      func() (string, error)
		want      string
		wantFound bool
	}{
		{
			name: "GetSecretValue by name returns the current value",
			call: func() (string, error) {
				out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("buddy-v1")})
				if err != nil {
					return "", err
				}
				return aws.ToString(out.Name) + "=" + aws.ToString(out.SecretString), nil
			},
			want: `buddy-v1={"api_key":"sk-ant-one"}`, wantFound: true,
		},
		{
			name: "GetSecretValue by ARN finds the same secret",
			call: func() (string, error) {
				d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("buddy-v1")})
				if err != nil {
					return "", err
				}
				out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: d.ARN})
				if err != nil {
					return "", err
				}
				return aws.ToString(out.SecretString), nil
			},
			want: `{"api_key":"sk-ant-one"}`, wantFound: true,
		},
		{
			name: "DescribeSecret finds a secret without a value",
			call: func() (string, error) {
				out, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("buddy-unset")})
				if err != nil {
					return "", err
				}
				return aws.ToString(out.Name), nil
			},
			want: "buddy-unset", wantFound: true,
		},
		{
			name: "GetSecretValue of a secret without a value is not found",
			call: func() (string, error) {
				_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("buddy-unset")})
				return "", err
			},
		},
		{
			name: "GetSecretValue of an unknown name is not found",
			call: func() (string, error) {
				_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")})
				return "", err
			},
		},
		{
			name: "DescribeSecret of an unknown name is not found",
			call: func() (string, error) {
				_, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("nope")})
				return "", err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.call()
			if !tt.wantFound {
				var nf *types.ResourceNotFoundException
				if !errors.As(err, &nf) {
					t.Errorf("error = %v, want ResourceNotFoundException", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if g, d := srv.Calls(fakesecrets.GetSecretValue), srv.Calls(fakesecrets.DescribeSecret); g != 4 || d != 3 {
		t.Errorf("counted %d GetSecretValue and %d DescribeSecret calls, want 4 and 3", g, d)
	}
}

func TestSetReplacesTheValue(t *testing.T) {
	srv := fakesecrets.New()
	c, _ := client(t, srv)
	for _, v := range []string{"first", "second"} {
		srv.Set("s", v)
		out, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
		if err != nil || aws.ToString(out.SecretString) != v {
			t.Errorf("after Set(%q): %v, %v", v, out, err)
		}
	}
	srv.Delete("s")
	_, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("after Delete: %v, want ResourceNotFoundException", err)
	}
}

func TestUnsignedOrUnknownRequestsAreRefused(t *testing.T) {
	srv := fakesecrets.New()
	srv.Set("s", "v")
	_, url := client(t, srv)
	tests := []struct {
		name, target, auth, wantType string
	}{
		{name: "an unsigned request is refused", target: "secretsmanager.GetSecretValue", wantType: "MissingAuthenticationTokenException"},
		{name: "an operation it does not serve is refused", target: "secretsmanager.DeleteSecret", auth: awstest.SigV4, wantType: "UnknownOperationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := http.Header{"X-Amz-Target": {tt.target}, "Content-Type": {"application/x-amz-json-1.1"}}
			if tt.auth != "" {
				header.Set("Authorization", tt.auth)
			}
			res := awstest.Do(t, http.MethodPost, url, `{"SecretId":"s"}`, header)
			if res.StatusCode != 400 || res.Header.Get("x-amzn-ErrorType") != tt.wantType {
				t.Errorf("status %d, type %q; want 400 %s", res.StatusCode, res.Header.Get("x-amzn-ErrorType"), tt.wantType)
			}
		})
	}
}
