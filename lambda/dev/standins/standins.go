// Package standins starts, on loopback, what a Buddy function calls when it
// runs under the Lambda Runtime Interface Emulator (lambda/dev/rie), and
// builds the environment Lambda and the stack would give it, pointed at
// them: DynamoDB Local (AWS's emulator), the S3 emulator of the uploads
// (lambda/dev/s3local) and the project's one stand-in per protocol where
// AWS publishes none (Secrets Manager, the Lambda Invoke API, API
// Gateway's @connections, a JWT issuer's JWKS).
//
// The emulator tests of the six functions and the benchmark run them the
// same way, so that what the tests check is what the benchmark measures.
// Tooling only: no package a function's main links may import it.
package standins

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/dev/fakeconnections"
	"github.com/p2/buddy/lambda/dev/fakelambda"
	"github.com/p2/buddy/lambda/dev/fakesecrets"
	"github.com/p2/buddy/lambda/dev/localissuer"
	"github.com/p2/buddy/lambda/dev/rie"
	"github.com/p2/buddy/lambda/dev/s3local"
	"github.com/p2/buddy/lambda/manifest"
)

// Options say how the stand-ins present themselves to the functions.
type Options struct {
	// DB starts DynamoDB Local with the functions' tables, and the S3
	// emulator with the uploads bucket.
	DB bool
	// TablePrefix names the tables, in DynamoDB Local or not: a table's
	// name is TablePrefix + its id.
	TablePrefix string
	// Audience is the `aud` of the issuer's tokens.
	Audience string
	// Stage is the WebSocket API stage the functions post to.
	Stage string
	// APIKey is the Anthropic API key stored in the model secret.
	APIKey string
}

// Set is the running stand-ins.
type Set struct {
	DB      *dynamodblocal.Local // nil unless Options.DB
	S3      *s3local.Server      // nil unless Options.DB
	Secrets *fakesecrets.Server
	// Posts records every @connections post; set OnPost before a run.
	Posts  *fakeconnections.Recorder
	Lambda *fakelambda.Server
	Issuer *localissuer.Issuer
	// Endpoints are the variables that point every function at the
	// stand-ins; Serve another one and add its variable here.
	Endpoints map[string]string

	tablePrefix string
	servers     []*httptest.Server

	mu        sync.Mutex
	targets   map[string]*rie.Function // function name → where its Event invocations go
	forwarded []Forwarded
	changed   chan struct{} // closed and replaced at every forwarded answer
}

// Forwarded is how an Event invocation that came through the Lambda API
// ended under the emulator.
type Forwarded struct {
	Function string
	Resp     rie.Response
	Err      error
}

// Start starts the stand-ins. On error nothing is left running.
func Start(ctx context.Context, o Options) (s *Set, err error) {
	s = &Set{
		Secrets:     fakesecrets.New(),
		Posts:       &fakeconnections.Recorder{},
		Endpoints:   map[string]string{},
		tablePrefix: o.TablePrefix,
		targets:     map[string]*rie.Function{},
		changed:     make(chan struct{}),
	}
	defer func() {
		if err != nil {
			_ = s.Close()
			s = nil
		}
	}()
	if o.DB {
		if s.DB, err = dynamodblocal.StartWithTables(ctx, dynamodblocal.Options{}, o.TablePrefix); err != nil {
			return s, err // says what to install when java or the jar is missing
		}
		s.Endpoints["AWS_ENDPOINT_URL_DYNAMODB"] = s.DB.Endpoint()
		if s.S3, err = s3local.Start(ctx, s3local.Options{}); err != nil {
			return s, err
		}
		if err := s.S3.CreateBucket(ctx, UploadsBucket); err != nil {
			return s, err
		}
		s.Endpoints[config.S3Endpoint] = s.S3.Endpoint()
		s.Endpoints[config.UploadsBucket] = UploadsBucket
	}
	s.Secrets.Set(config.ModelDefaults[config.SecretName], `{"api_key":"`+o.APIKey+`"}`)
	s.Lambda = fakelambda.New(s.forward)
	// The issuer is its server's URL, so config derives its JWKS URL
	// <issuer>/.well-known/jwks.json as it does for Cognito, and a verifier
	// fetching it does the work it does in AWS; the handler is set once
	// the issuer, which needs the URL, exists.
	var jwks http.Handler = http.NotFoundHandler()
	issuerSrv := s.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { jwks.ServeHTTP(w, r) }))
	if s.Issuer, err = localissuer.New(issuerSrv.URL, o.Audience, nil); err != nil {
		return s, err
	}
	jwks = s.Issuer.JWKSHandler()
	s.Endpoints["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = s.Serve(s.Secrets).URL
	s.Endpoints["AWS_ENDPOINT_URL_LAMBDA"] = s.Serve(s.Lambda).URL
	s.Endpoints[config.ConnectionsEndpoint] = s.Serve(fakeconnections.NewHandler(s.Posts)).URL + "/" + o.Stage
	return s, nil
}

// Serve serves h on loopback until Close.
func (s *Set) Serve(h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	s.servers = append(s.servers, srv)
	return srv
}

// Close stops the servers and the emulators.
func (s *Set) Close() error {
	for _, srv := range s.servers {
		srv.Close()
	}
	var errs []error
	if s.S3 != nil {
		errs = append(errs, s.S3.Stop())
	}
	if s.DB != nil {
		errs = append(errs, s.DB.Stop())
	}
	return errors.Join(errs...)
}

// UploadsBucket is the bucket of attachments in the S3 emulator.
const UploadsBucket = "buddy-uploads"

// Route sends the Event invocations of function that reach the Lambda API
// to f (nil: refuse them, as Lambda does for an unknown function).
func (s *Set) Route(function string, f *rie.Function) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == nil {
		delete(s.targets, function)
	} else {
		s.targets[function] = f
	}
}

// forward is the Lambda API's callback: the invocation goes to the
// function under the emulator once its current invocation has ended (one
// execution environment runs one invocation at a time, and the emulator
// has only one).
func (s *Set) forward(_ context.Context, inv fakelambda.Invocation) error {
	s.mu.Lock()
	f := s.targets[inv.Function]
	s.mu.Unlock()
	if f == nil {
		return fakelambda.ErrUnknownFunction
	}
	go func() {
		// Not the request's context, which ends with the 202: the job
		// runs until it ends or its emulator is stopped.
		resp, err := f.Invoke(context.Background(), inv.Payload)
		s.mu.Lock()
		s.forwarded = append(s.forwarded, Forwarded{inv.Function, resp, err})
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}()
	return nil
}

// ForwardedSoFar is how many forwarded invocations have ended: the from
// of a later WaitForwarded.
func (s *Set) ForwardedSoFar() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.forwarded)
}

// WaitForwarded waits until n forwarded invocations after the first from
// have ended and returns those, or returns what there is when stop closes
// (nil: never) or ctx ends.
func (s *Set) WaitForwarded(ctx context.Context, from, n int, stop <-chan struct{}) ([]Forwarded, error) {
	for {
		s.mu.Lock()
		done, changed := append([]Forwarded(nil), s.forwarded[from:]...), s.changed
		s.mu.Unlock()
		if len(done) >= n {
			return done, nil
		}
		select {
		case <-changed:
		case <-stop:
			return done, nil
		case <-ctx.Done():
			return done, ctx.Err()
		}
	}
}

// Code is what one function's environment has of its own: where its code
// is, what runs it, and variables its runtime or a test adds.
type Code struct {
	// Home is HOME: an empty directory, so the SDKs find no ~/.aws files.
	Home string
	// TaskRoot is Lambda's code directory, the bootstrap's.
	TaskRoot string
	// Handler is _HANDLER: "bootstrap" for a Go function on
	// provided.al2023, the module.function of a managed runtime.
	Handler string
	// Vars are set last: runtime-specific variables and overrides.
	Vars map[string]string
}

// FunctionEnv is fn's whole environment ("KEY=value", sorted) as Lambda
// and the stack would set it: the platform's variables, the configuration
// every function validates (the documented defaults), the tables fn uses,
// the issuer for $connect, and the stand-ins' endpoints, since the SDKs
// read the AWS_ENDPOINT_URL_<service> variables at init whether set or not
// and so start as they do in AWS; c.Vars last.
func (s *Set) FunctionEnv(fn manifest.Function, c Code) []string {
	vars := map[string]string{
		"PATH":                            "/usr/local/bin:/usr/bin:/bin",
		"LANG":                            "en_US.UTF-8",
		"TZ":                              ":UTC",
		"HOME":                            c.Home,
		"LAMBDA_TASK_ROOT":                c.TaskRoot,
		"LAMBDA_RUNTIME_DIR":              c.TaskRoot,
		"_HANDLER":                        c.Handler,
		"AWS_LAMBDA_FUNCTION_NAME":        fn.Name,
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
		// The emulator gives each invocation the function's own timeout.
		"AWS_LAMBDA_FUNCTION_TIMEOUT":    strconv.Itoa(fn.TimeoutSeconds),
		"AWS_LAMBDA_LOG_GROUP_NAME":      "/aws/lambda/" + fn.Name,
		"AWS_LAMBDA_LOG_STREAM_NAME":     "2026/01/01/[$LATEST]0123456789abcdef",
		"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
		// The stack's default region, which the stand-ins' ARNs name too.
		"AWS_REGION":            "us-east-1",
		"AWS_DEFAULT_REGION":    "us-east-1",
		"AWS_ACCESS_KEY_ID":     "ASIASTANDINSEXAMPLE",
		"AWS_SECRET_ACCESS_KEY": "standins/secret/access/key/not/a/real/one",
		"AWS_SESSION_TOKEN":     "standins-session-token",
	}
	maps.Copy(vars, config.ModelDefaults)
	for _, t := range fn.Tables {
		vars[t.EnvVar] = s.tablePrefix + t.ID
	}
	if fn.Name == manifest.WebSocketConnect.Name {
		vars[config.JWTIssuer] = s.Issuer.Issuer()
		vars[config.JWTAudience] = s.Issuer.Audience()
	}
	maps.Copy(vars, s.Endpoints)
	if s.S3 != nil {
		// The S3 emulator checks signatures, with its own keys; the
		// other stand-ins take any.
		creds := s.S3.Credentials()
		vars["AWS_ACCESS_KEY_ID"], vars["AWS_SECRET_ACCESS_KEY"] = creds.AccessKeyID, creds.SecretAccessKey
		delete(vars, "AWS_SESSION_TOKEN")
	}
	maps.Copy(vars, c.Vars)
	env := make([]string, 0, len(vars))
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, k+"="+vars[k])
	}
	return env
}
