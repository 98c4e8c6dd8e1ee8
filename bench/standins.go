package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/dev/fakeconnections"
	"github.com/p2/buddy/lambda/dev/fakelambda"
	"github.com/p2/buddy/lambda/dev/fakesecrets"
	"github.com/p2/buddy/lambda/dev/localissuer"
	"github.com/p2/buddy/lambda/dev/rie"
)

// benchAudience is the JWT audience of the benchmark's issuer.
const benchAudience = "buddy-bench"

// benchStage is the WebSocket API stage the functions post to.
const benchStage = "bench"

// standIns are what the functions call, all on loopback, so nothing a
// function does at init or in an invocation leaves the machine: DynamoDB
// Local (AWS's emulator) and the project's one stand-in per protocol
// where AWS publishes none (lambda/dev: Secrets Manager, the Lambda Invoke
// API, API Gateway's @connections, a JWT issuer's JWKS).
type standIns struct {
	db      *dynamodblocal.Local // nil when not asked for
	secrets *fakesecrets.Server
	// posts records every @connections post; set OnPost before a run.
	posts  *fakeconnections.Recorder
	lambda *fakelambda.Server
	issuer *localissuer.Issuer
	// endpoints are the variables that point the functions at them.
	endpoints map[string]string
	servers   []*httptest.Server

	mu        sync.Mutex
	targets   map[string]*rie.Function // function name → where its Event invocations go
	forwarded []forwarded
	changed   chan struct{} // closed and replaced at every forwarded answer
}

// forwarded is how an invocation that came through the Lambda API ended
// under the emulator.
type forwarded struct {
	function string
	resp     rie.Response
	err      error
}

// startStandIns starts the stand-ins, and DynamoDB Local with the
// benchmark's tables when withDB is set.
func startStandIns(ctx context.Context, withDB bool) (s *standIns, err error) {
	s = &standIns{
		secrets:   fakesecrets.New(),
		posts:     &fakeconnections.Recorder{},
		targets:   map[string]*rie.Function{},
		endpoints: map[string]string{},
		changed:   make(chan struct{}),
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if withDB {
		if s.db, err = dynamodblocal.StartWithTables(ctx, dynamodblocal.Options{}, tablePrefix); err != nil {
			return s, err
		}
		s.endpoints["AWS_ENDPOINT_URL_DYNAMODB"] = s.db.Endpoint()
	}
	s.secrets.Set(config.ModelDefaults[config.SecretName], `{"api_key":"sk-ant-benchmark"}`)
	s.lambda = fakelambda.New(s.forward)
	var jwks http.Handler = http.NotFoundHandler()
	issuerSrv := s.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { jwks.ServeHTTP(w, r) }))
	// A valid key set where config derives the JWKS URL from the issuer,
	// so that a verifier fetching it does the work it does in AWS.
	if s.issuer, err = localissuer.New(issuerSrv.URL, benchAudience, nil); err != nil {
		return s, err
	}
	jwks = s.issuer.JWKSHandler()
	s.endpoints["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = s.serve(s.secrets).URL
	s.endpoints["AWS_ENDPOINT_URL_LAMBDA"] = s.serve(s.lambda).URL
	s.endpoints[config.ConnectionsEndpoint] = s.serve(fakeconnections.NewHandler(s.posts)).URL + "/" + benchStage
	s.endpoints[config.JWTIssuer] = s.issuer.Issuer()
	s.endpoints[config.JWTAudience] = s.issuer.Audience()
	return s, nil
}

func (s *standIns) serve(h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	s.servers = append(s.servers, srv)
	return srv
}

func (s *standIns) close() error {
	for _, srv := range s.servers {
		srv.Close()
	}
	if s.db != nil {
		return s.db.Stop()
	}
	return nil
}

// route sends the Event invocations of function to f (nil: refuse them).
func (s *standIns) route(function string, f *rie.Function) {
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
// execution environment, one invocation at a time).
func (s *standIns) forward(_ context.Context, inv fakelambda.Invocation) error {
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
		s.forwarded = append(s.forwarded, forwarded{inv.Function, resp, err})
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}()
	return nil
}

// forwardedSoFar is how many forwarded invocations have ended.
func (s *standIns) forwardedSoFar() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.forwarded)
}

// waitForwarded waits until n forwarded invocations after the first from
// have ended and returns those, or returns what there is when stop closes
// or ctx ends.
func (s *standIns) waitForwarded(ctx context.Context, from, n int, stop <-chan struct{}) ([]forwarded, error) {
	for {
		s.mu.Lock()
		done, changed := append([]forwarded(nil), s.forwarded[from:]...), s.changed
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
