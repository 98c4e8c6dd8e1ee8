// Package devserver runs the whole Buddy backend on one machine (`make
// dev`): the six functions' real handler code behind local stand-ins for
// API Gateway's WebSocket API (with its @connections endpoint,
// fakeconnections) and HTTP API (with its JWT authorizer), the Lambda
// Invoke API the message function starts its reply jobs through
// (fakelambda), Amazon DynamoDB Local as the store,
// persisted in a state folder, and Claude or an offline stand-in that
// speaks the Messages streaming protocol. It also serves a small chat page.
//
// It is a library so that tests and benchmarks start it in-process on free
// ports:
//
//	srv, err := devserver.Start(ctx, devserver.Config{StateDir: t.TempDir()})
//	defer srv.Close()
//	token, _ := srv.Token("alice")
//	conn, _, _ := websocket.Dial(ctx, srv.WebSocketURL+"?token="+token, nil)
//
// What it mirrors of API Gateway, and why each piece matters, is in
// docs/dev.md.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	lambdasvc "github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/p2/buddy/lambda/app"
	"github.com/p2/buddy/lambda/auth"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/dev/fakelambda"
	"github.com/p2/buddy/lambda/dev/localissuer"
	"github.com/p2/buddy/lambda/dev/s3local"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/wsapi"
)

// Defaults of Config.
const (
	DefaultStage    = "dev"
	DefaultAudience = "buddy-dev"
	// TablePrefix names the local tables ("buddy-dev-Conversations").
	TablePrefix = "buddy-dev-"
	// UploadsBucket is the bucket of attachments in the S3 emulator.
	UploadsBucket = "buddy-dev-uploads"
)

// API Gateway's quotas: the dev server enforces the same.
const (
	IntegrationTimeout = 29 * time.Second
	IdleTimeout        = 10 * time.Minute
	MaxConnectionAge   = 2 * time.Hour
	// httpAPIIntegrationTimeout is the HTTP API's maximum (30 s).
	httpAPIIntegrationTimeout = 30 * time.Second
)

// otherFunctionTimeout is longer than the stack's 10 s for the functions
// that answer at once: the dev server and its tests run on busy developer
// and CI machines, where a slow answer is not a bug. The message function
// gets its deployed timeout (it bounds a reply's stream). The deployed
// timeouts themselves are exercised under the Lambda emulator.
const otherFunctionTimeout = 30 * time.Second

// Config says how to run the dev server. Only StateDir is required.
type Config struct {
	// HTTPAddr and WSAddr are the listen addresses of the HTTP API and
	// the WebSocket API; "127.0.0.1:0" (the default) picks a free port.
	HTTPAddr, WSAddr string
	// Stage is the WebSocket API's stage, the first path segment of its
	// URL and of the @connections endpoint (default "dev").
	Stage string
	// StateDir keeps what survives a restart: the DynamoDB Local data
	// (StateDir/dynamodb) and the token signing key (StateDir/jwt-key.pem).
	StateDir string
	// DynamoDB, when set, is a running DynamoDB Local with the tables to
	// use instead of starting one on StateDir/dynamodb; Close leaves it
	// running. Tests share one this way, since a JVM takes seconds to
	// start.
	DynamoDB *dynamodblocal.Local
	// DynamoDBOutput receives the output of the DynamoDB Local that Start
	// starts; nil discards it.
	DynamoDBOutput io.Writer
	// S3 is a running S3 emulator to keep the uploads in (tests share
	// one); nil starts one with its data in the state directory.
	S3 *s3local.Server
	// AnthropicAPIKey, when set, sends replies to Claude through the
	// normal code path; empty uses the offline stand-in. It is only ever
	// held in memory.
	AnthropicAPIKey string
	// Getenv overrides the model settings (ANTHROPIC_MODEL_ID, MAX_TOKENS,
	// TEMPERATURE, TOP_P, TOP_K, USE_OPUS_MODEL), DAILY_TOKEN_LIMIT,
	// MAX_INFLIGHT_REPLIES_PER_USER, RESUMES_PER_MINUTE and
	// ORPHAN_REPLY_GRACE_SECONDS, validated by the same rules as in AWS;
	// nil keeps the defaults.
	Getenv func(string) string
	// Log receives the functions' summary lines and the server's own
	// messages; nil discards them.
	Log *slog.Logger
	// Limits for tests; zero means API Gateway's value.
	IntegrationTimeout, IdleTimeout, MaxConnectionAge time.Duration
}

// Server is a running dev server. Its URLs are final once Start returns.
type Server struct {
	// WebSocketURL is the WebSocket API (ws://127.0.0.1:<port>/<stage>);
	// connect with ?token=<JWT>.
	WebSocketURL string
	// ConnectionsURL is the @connections endpoint the handlers post to
	// (http://127.0.0.1:<port>/<stage>).
	ConnectionsURL string
	// HTTPURL is the HTTP API (and the chat page, the token endpoint and
	// the JWKS) without a trailing slash.
	HTTPURL string
	// PageURL is the chat page.
	PageURL string
	// Model is the model id requests are made with; the stand-in reports
	// "standin/<Model>".
	Model string
	// StandIn is the offline model, nil when AnthropicAPIKey was set.
	StandIn *StandIn
	// Store is the store the handlers share (for tests that check what was
	// written).
	Store store.Store
	// DynamoEndpoint is DynamoDB Local's URL.
	DynamoEndpoint string
	// S3Endpoint is the S3 emulator's URL; UploadsBucket the bucket of
	// attachments in it.
	S3Endpoint    string
	UploadsBucket string
	// LambdaURL is the Lambda API (Invoke) the message function starts its
	// reply jobs through.
	LambdaURL string

	issuer    *localissuer.Issuer
	iv        *invoker
	ws        *wsGateway
	api       *httpGateway
	httpSrv   *http.Server
	wsSrv     *http.Server
	lambdaSrv *http.Server
	message   *function // the message function, where reply jobs go
	db        *dynamodblocal.Local
	ownDB     bool // started by Start, so stopped by Close
	s3        *s3local.Server
	ownS3     bool
	closeOnce sync.Once
	closeErr  error
}

// Start runs the dev server until Close. ctx bounds the start only.
func Start(ctx context.Context, cfg Config) (s *Server, err error) {
	if cfg.StateDir == "" {
		return nil, errors.New("devserver: a state directory is required")
	}
	cfg = withDefaults(cfg)
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("devserver: state directory: %w", err)
	}
	s = &Server{}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()

	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("devserver: HTTP API listener: %w", err)
	}
	cleanup = append(cleanup, func() { httpLn.Close() })
	wsLn, err := net.Listen("tcp", cfg.WSAddr)
	if err != nil {
		return nil, fmt.Errorf("devserver: WebSocket API listener: %w", err)
	}
	cleanup = append(cleanup, func() { wsLn.Close() })
	lambdaLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("devserver: Lambda API listener: %w", err)
	}
	cleanup = append(cleanup, func() { lambdaLn.Close() })
	s.LambdaURL = "http://" + lambdaLn.Addr().String()
	s.HTTPURL = "http://" + httpLn.Addr().String()
	s.PageURL = s.HTTPURL + "/"
	s.WebSocketURL = "ws://" + wsLn.Addr().String() + "/" + cfg.Stage
	s.ConnectionsURL = "http://" + wsLn.Addr().String() + "/" + cfg.Stage

	db := cfg.DynamoDB
	if db == nil {
		db, err = dynamodblocal.StartWithTables(ctx, dynamodblocal.Options{
			Dir:    filepath.Join(cfg.StateDir, "dynamodb"),
			Stdout: cfg.DynamoDBOutput,
		}, TablePrefix)
		if err != nil {
			return nil, fmt.Errorf("devserver: store: %w", err)
		}
		cleanup = append(cleanup, func() { _ = db.Stop() })
		s.ownDB = true
	}
	s.db, s.DynamoEndpoint = db, db.Endpoint()
	s.Store = store.NewDynamo(db.Client, db.Tables)

	if s.s3 = cfg.S3; s.s3 == nil {
		if s.s3, err = s3local.Start(ctx, s3local.Options{Dir: filepath.Join(cfg.StateDir, "s3")}); err != nil {
			return nil, fmt.Errorf("devserver: uploads: %w", err)
		}
		cleanup = append(cleanup, func() { _ = s.s3.Stop() })
		s.ownS3 = true
	}
	s.S3Endpoint, s.UploadsBucket = s.s3.Endpoint(), UploadsBucket
	if err := s.s3.CreateBucket(ctx, UploadsBucket); err != nil {
		return nil, fmt.Errorf("devserver: uploads: %w", err)
	}

	key, err := localissuer.LoadOrCreateKey(filepath.Join(cfg.StateDir, "jwt-key.pem"))
	if err != nil {
		return nil, fmt.Errorf("devserver: signing key: %w", err)
	}
	// The issuer is this server's URL, so config derives the JWKS URL
	// <issuer>/.well-known/jwks.json exactly as it does for Cognito.
	s.issuer, err = localissuer.New(s.HTTPURL, DefaultAudience, key)
	if err != nil {
		return nil, fmt.Errorf("devserver: token issuer: %w", err)
	}

	m, err := startModel(cfg)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, m.close)
	s.StandIn = m.standIn

	rt, err := runtimeConfig(cfg, s, db.Tables, m.baseURL)
	if err != nil {
		return nil, err
	}
	s.Model = rt.Model.ModelID

	s.iv = newInvoker(cfg.Log)
	cleanup = append(cleanup, func() { _ = s.iv.close(time.Second) })
	fns, err := s.functions(ctx, cfg, rt, m.keys)
	if err != nil {
		return nil, err
	}
	if err := s.gateways(cfg, fns); err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	(&devRoutes{issuer: s.issuer, info: s.pageConfig}).register(mux)
	mux.Handle("/", s.api)
	// Every listener answers only its own loopback address (loopback.go).
	// The chat page lives on the HTTP listener and opens its socket on the
	// WebSocket one, so pages of either are the server's own; the Lambda
	// API is called by the SDK only, never by a page.
	httpHosts, wsHosts := ownHosts(httpLn.Addr()), ownHosts(wsLn.Addr())
	pages := originsOf(httpHosts, wsHosts)
	// The page posts uploads straight to the bucket, as it does to S3.
	if err := allowPages(ctx, s.s3.Client(), UploadsBucket, originsOf(httpHosts)); err != nil {
		return nil, fmt.Errorf("devserver: uploads: %w", err)
	}
	errLog := slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn)
	s.httpSrv = &http.Server{Handler: guard("HTTP API", httpHosts, pages, cfg.Log, mux), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	s.wsSrv = &http.Server{Handler: guard("WebSocket API", wsHosts, pages, cfg.Log, s.ws.handler()), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	s.lambdaSrv = &http.Server{Handler: guard("Lambda API", ownHosts(lambdaLn.Addr()), nil, cfg.Log, fakelambda.New(s.acceptJob)), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	go func() { _ = s.httpSrv.Serve(httpLn) }()
	go func() { _ = s.wsSrv.Serve(wsLn) }()
	go func() { _ = s.lambdaSrv.Serve(lambdaLn) }()
	return s, nil
}

// gateways puts the functions behind the two APIs, on the routes of
// lambda/manifest.
func (s *Server) gateways(cfg Config, fns builtFunctions) error {
	s.ws = newWSGateway(cfg.Stage, newAPIID(), s.iv, map[string]*function{}, wsLimits{
		maxMessage:  wsapi.MaxMessageBytes,
		maxFrame:    wsapi.MaxFrameBytes,
		idle:        cfg.IdleTimeout,
		maxAge:      cfg.MaxConnectionAge,
		integration: cfg.IntegrationTimeout,
	}, cfg.Log)
	for _, r := range manifest.WebSocketRoutes {
		fn := fns.byName[r.Function.Name]
		if fn == nil {
			return fmt.Errorf("devserver: route %s: no function %s", r.RouteKey, r.Function.Name)
		}
		s.ws.routes[r.RouteKey] = fn
	}
	httpIntegration := httpAPIIntegrationTimeout
	if cfg.IntegrationTimeout != IntegrationTimeout {
		httpIntegration = cfg.IntegrationTimeout // a test's override
	}
	s.api = &httpGateway{
		apiID:       newAPIID(),
		iv:          s.iv,
		verifier:    fns.verifier,
		integration: httpIntegration,
		log:         cfg.Log,
	}
	for _, r := range manifest.HTTPRoutes {
		fn := fns.byName[r.Function.Name]
		if fn == nil {
			return fmt.Errorf("devserver: route %s: no function %s", r.RouteKey, r.Function.Name)
		}
		route, err := newHTTPRoute(r.RouteKey, fn)
		if err != nil {
			return fmt.Errorf("devserver: %w", err)
		}
		s.api.routes = append(s.api.routes, route)
	}
	return nil
}

func withDefaults(cfg Config) Config {
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.WSAddr == "" {
		cfg.WSAddr = "127.0.0.1:0"
	}
	if cfg.Stage == "" {
		cfg.Stage = DefaultStage
	}
	if cfg.Getenv == nil {
		cfg.Getenv = func(string) string { return "" }
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.IntegrationTimeout <= 0 {
		cfg.IntegrationTimeout = IntegrationTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = IdleTimeout
	}
	if cfg.MaxConnectionAge <= 0 {
		cfg.MaxConnectionAge = MaxConnectionAge
	}
	return cfg
}

// overridable are the variables a developer may set for a local run; the
// provider, the secret and the endpoints are the dev server's own. A short
// orphan grace lets a test (or a developer) watch an abandoned reply stop
// without waiting two minutes; the quota and resume limits let the bench
// put many sends or resumes of one user at once against them.
var overridable = []string{
	config.ModelID, config.UseOpusModel, config.MaxTokens, config.Temperature,
	config.TopP, config.TopK, config.DailyTokenLimit, config.MaxInflightReplies,
	config.ResumesPerMinute, config.OrphanReplyGraceSeconds, config.AllowedModels, config.PromptCache,
	config.ConnectionTTLSeconds, config.MaxImageBytes, config.MaxPDFBytes, config.MaxPDFPages, config.MaxUploadsPerUserDay,
}

// runtimeConfig builds the environment the functions would have in AWS and
// validates it with the same rules.
func runtimeConfig(cfg Config, s *Server, tables config.Tables, modelURL string) (config.Runtime, error) {
	env := maps.Clone(config.ModelDefaults)
	for _, k := range overridable {
		if v := cfg.Getenv(k); v != "" {
			env[k] = v
		}
	}
	if cfg.Getenv(config.TopP) != "" && cfg.Getenv(config.Temperature) == "" {
		// Setting TOP_P asks for it instead of the default temperature.
		delete(env, config.Temperature)
	}
	env[config.ConnectionsTable] = tables.Connections
	env[config.ConversationsTable] = tables.Conversations
	env[config.MessagesTable] = tables.Messages
	env[config.PromptsTable] = tables.Prompts
	env[config.UsageTable] = tables.Usage
	env[config.RepliesTable] = tables.Replies
	env[config.JWTIssuer] = s.issuer.Issuer()
	env[config.JWTAudience] = s.issuer.Audience()
	env[config.ConnectionsEndpoint] = s.ConnectionsURL
	env[config.AnthropicBaseURL] = modelURL
	env[config.UploadsTable] = tables.Uploads
	env[config.UploadsBucket] = s.UploadsBucket
	env[config.S3Endpoint] = s.S3Endpoint
	get := func(k string) string { return env[k] }
	rt, err := config.ParseRuntime(get)
	for _, fn := range manifest.Functions {
		err = errors.Join(err, config.Require(get, app.Required(fn)...))
	}
	if err != nil {
		return rt, fmt.Errorf("devserver: configuration: %w", err)
	}
	return rt, nil
}

// builtFunctions are the six functions wired to the gateways.
type builtFunctions struct {
	byName   map[string]*function
	verifier auth.Verifier
}

// functions builds each function from its own app.Deps, as its main does
// in AWS, all sharing one store. The message function starts its reply job
// as in AWS, with an Event invocation of itself through the Lambda API
// (fakelambda on LambdaURL), which hands it to the invoker (acceptJob).
func (s *Server) functions(ctx context.Context, cfg Config, rt config.Runtime, keys staticKey) (builtFunctions, error) {
	awsCfg := aws.Config{
		Region: "us-east-1",
		// The @connections client signs its posts; the gateway accepts any
		// signature, so no real credentials are needed or read.
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
	}
	out := builtFunctions{byName: map[string]*function{}}
	for _, fn := range manifest.Functions {
		opts := app.Options{AWS: &awsCfg, Store: s.Store, Log: cfg.Log, S3: s.s3.Client()}
		if keys != "" {
			opts.Keys = keys
		}
		if fn.Name == manifest.WebSocketMessage.Name {
			opts.Dispatcher = &app.InvokeDispatcher{
				Client: lambdasvc.NewFromConfig(awsCfg, func(o *lambdasvc.Options) {
					o.BaseEndpoint = aws.String(s.LambdaURL)
				}),
				Function: fn.Name,
			}
		}
		d, err := app.New(ctx, fn, rt, opts)
		if err != nil {
			return out, fmt.Errorf("devserver: %s: %w", fn.Name, err)
		}
		f := &function{name: fn.Name, timeout: otherFunctionTimeout}
		switch fn.Name {
		case manifest.WebSocketConnect.Name, manifest.WebSocketDisconnect.Name, manifest.WebSocketMessage.Name:
			w, err := d.WebSocket(ctx)
			if err != nil {
				return out, fmt.Errorf("devserver: %s: %w", fn.Name, err)
			}
			switch fn.Name {
			case manifest.WebSocketConnect.Name:
				f.handler = typed(w.Connect)
				out.verifier = w.Verifier
			case manifest.WebSocketDisconnect.Name:
				f.handler = typed(w.Disconnect)
			default:
				// The entry point its main hands to lambda.Start: API
				// Gateway events and reply jobs alike.
				f.handler = typed(w.Message)
				f.timeout = time.Duration(fn.TimeoutSeconds) * time.Second
				s.message = f
			}
		default:
			r, err := d.Router()
			if err != nil {
				return out, fmt.Errorf("devserver: %s: %w", fn.Name, err)
			}
			f.handler = typed(r.Handle)
		}
		out.byName[fn.Name] = f
	}
	if out.verifier == nil {
		return out, errors.New("devserver: the connect function has no verifier")
	}
	return out, nil
}

// acceptJob takes an Event invocation from the Lambda API: one of the
// message function's reply jobs, run in the background, never retried
// (the stack sets the function's async retries to zero).
func (s *Server) acceptJob(_ context.Context, inv fakelambda.Invocation) error {
	if inv.Function != manifest.WebSocketMessage.Name {
		return fakelambda.ErrUnknownFunction
	}
	return s.iv.dispatch(s.message, inv.Payload)
}

// pageConfig is what the page served to r needs. A page opened as
// localhost gets localhost URLs, so its calls stay on its own origin.
func (s *Server) pageConfig(r *http.Request) PageConfig {
	model := s.Model
	if s.StandIn != nil {
		model = StandInModelPrefix + model
	}
	c := PageConfig{WebSocketURL: s.WebSocketURL, HTTPURL: s.HTTPURL, StandIn: s.StandIn != nil, Model: model}
	if isLocalhost(r.Host) {
		c.WebSocketURL, c.HTTPURL = asLocalhost(c.WebSocketURL), asLocalhost(c.HTTPURL)
	}
	return c
}

// Token signs a token for sub, as POST /dev/token does.
func (s *Server) Token(sub string) (string, error) { return s.issuer.Sign(sub, TokenTTL) }

// Issuer is the local token issuer (for tests that need odd tokens).
func (s *Server) Issuer() *localissuer.Issuer { return s.issuer }

// Stats are the gateways' counters since Start.
type Stats struct {
	OpenConnections int
	// Connects counts upgrades, RefusedConnects $connect answers that
	// were not 2xx; Disconnects counts $disconnect invocations.
	Connects, RefusedConnects, Disconnects int64
	// Messages counts client messages routed.
	Messages int64
	// Posts counts @connections posts delivered; GonePosts those answered
	// 410, TooLargePosts those answered 413; FragmentedPosts delivered
	// posts over 32 KB that had to be split into several frames.
	Posts, GonePosts, TooLargePosts, FragmentedPosts int64
	// HTTPRequests counts HTTP API requests, HTTPUnauthorized those the
	// JWT authorizer refused.
	HTTPRequests, HTTPUnauthorized int64
	// FunctionErrors and IntegrationTimeouts count failed integrations.
	FunctionErrors, IntegrationTimeouts int64
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	g := s.ws
	g.mu.Lock()
	open := 0
	for _, c := range g.conns {
		if c.state == stateOpen {
			open++
		}
	}
	g.mu.Unlock()
	posts := g.connections.Stats()
	return Stats{
		OpenConnections:     open,
		Connects:            g.stats.connects.Load(),
		RefusedConnects:     g.stats.refused.Load(),
		Disconnects:         g.stats.disconnects.Load(),
		Messages:            g.stats.messages.Load(),
		Posts:               posts.Posts,
		GonePosts:           posts.Gone,
		TooLargePosts:       posts.TooLarge,
		FragmentedPosts:     g.stats.fragment.Load(),
		HTTPRequests:        s.api.requests.Load(),
		HTTPUnauthorized:    s.api.unauthorized.Load(),
		FunctionErrors:      g.stats.functionErrors.Load() + s.api.functionErrors.Load(),
		IntegrationTimeouts: g.stats.timeouts.Load() + s.api.timeouts.Load(),
	}
}

// shutdownGrace bounds each step of Close.
const shutdownGrace = 10 * time.Second

// requestGrace is how long Close lets HTTP requests in flight finish. It is
// short because net/http counts a connection that never sent a request (an
// http.Transport dial that lost its race) as busy for 5 s; no request here
// takes long.
const requestGrace = time.Second

func shutdown(srv *http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), requestGrace)
	defer cancel()
	if err := srv.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
		return srv.Close()
	} else if err != nil {
		return err
	}
	return nil
}

// Close stops everything Start started, in the order that lets running
// replies finish cleanly: no new HTTP requests, every socket closed with
// 1001 (each fires $disconnect; a reply still streaming loses its listener
// and waits for a resume that cannot come), running invocations given
// shutdownGrace to end and then cancelled, so such a reply stores what it
// has rather than waiting out its orphan grace; then the @connections
// endpoint, the Lambda API, the model stand-in and the DynamoDB Local that
// Start started.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		errs := []error{
			shutdown(s.httpSrv),
			s.ws.close(shutdownGrace),
			s.iv.close(shutdownGrace),
			shutdown(s.wsSrv),
			shutdown(s.lambdaSrv),
		}
		if s.StandIn != nil {
			errs = append(errs, s.StandIn.close())
		}
		if s.ownDB {
			errs = append(errs, s.db.Stop())
		}
		if s.ownS3 {
			errs = append(errs, s.s3.Stop())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
