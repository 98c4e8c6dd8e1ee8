// Package app wires a function from its environment: it validates the
// configuration, builds the AWS SDK clients, the store, the model client and
// the handlers. Every outside dependency can be replaced through Options, so
// the local dev server and the tests run the very same handler code against
// local stand-ins.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	lambdasvc "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/p2/buddy/lambda/auth"
	"github.com/p2/buddy/lambda/chat"
	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/httpapi"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/obs"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/uploads"
	"github.com/p2/buddy/lambda/wsapi"
	"github.com/p2/buddy/lambda/wshandler"
)

// Options replace parts of the wiring; zero values mean "as in AWS".
type Options struct {
	// AWS is the SDK configuration; loaded from the environment when nil.
	AWS *aws.Config
	// Store replaces the DynamoDB store.
	Store store.Store
	// Keys replaces the Secrets Manager key source (e.g. a key from the
	// developer's environment in the local dev server).
	Keys claude.KeySource
	// Model replaces the whole model client.
	Model claude.Streamer
	// Dispatcher replaces the self-invocation of the reply job.
	Dispatcher chat.Dispatcher
	// Verifier replaces the JWKS verifier.
	Verifier auth.Verifier
	// HTTPClient is used for the model API and the JWKS.
	HTTPClient *http.Client
	// S3 replaces the uploads bucket's client.
	S3 *s3.Client
	// Log replaces the stdout JSON logger.
	Log *slog.Logger
}

// Deps are a function's built dependencies.
type Deps struct {
	Function string
	Config   config.Runtime
	Store    store.Store
	Log      *slog.Logger

	opts    Options
	aws     aws.Config
	posters *wsapi.Connections
}

// New validates cfg for fn and builds what fn needs.
func New(ctx context.Context, fn manifest.Function, cfg config.Runtime, opts Options) (*Deps, error) {
	d := &Deps{Function: fn.Name, Config: cfg, opts: opts, Log: opts.Log}
	if d.Log == nil {
		d.Log = obs.NewLogger(os.Stdout)
	}
	if opts.AWS != nil {
		d.aws = *opts.AWS
	} else {
		c, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("load AWS configuration: %w", err)
		}
		d.aws = c
	}
	d.Store = opts.Store
	if d.Store == nil {
		d.Store = store.NewDynamo(dynamodb.NewFromConfig(d.aws), cfg.Tables)
	}
	d.posters = wsapi.NewConnections(d.aws)
	return d, nil
}

// Required lists the variables fn cannot run without, beyond the model
// variables every function validates.
func Required(fn manifest.Function) []string {
	var names []string
	for _, t := range fn.Tables {
		names = append(names, t.EnvVar)
	}
	if fn.Name == manifest.WebSocketConnect.Name {
		names = append(names, config.JWTIssuer, config.JWTAudience)
	}
	if fn.Name == manifest.ConversationAPI.Name || fn.Name == manifest.WebSocketMessage.Name {
		names = append(names, config.UploadsBucket)
	}
	return names
}

// Bucket is the uploads bucket, on the S3 client of Options, or one from
// the AWS configuration (S3_ENDPOINT points it at a local emulator).
func (d *Deps) Bucket() uploads.Bucket {
	client := d.opts.S3
	if client == nil {
		client = s3.NewFromConfig(d.aws, func(o *s3.Options) {
			if d.Config.S3Endpoint != "" {
				o.BaseEndpoint = aws.String(d.Config.S3Endpoint)
				o.UsePathStyle = true
			}
		})
	}
	return uploads.Bucket{Client: client, Name: d.Config.UploadsBucket}
}

// Limits are the attachment limits of the configuration.
func (d *Deps) Limits() uploads.Limits {
	return uploads.Limits{ImageBytes: d.Config.MaxImageBytes, PDFBytes: d.Config.MaxPDFBytes, PDFPages: d.Config.MaxPDFPages}
}

// Main is the whole main of a function: configuration errors stop the
// function at init with one log line per offending variable.
func Main(fn manifest.Function, handler func(*Deps) (any, error)) {
	log := obs.NewLogger(os.Stdout)
	ctx := context.Background()
	cfg, err := config.Load()
	err = errors.Join(err, config.Require(os.Getenv, Required(fn)...))
	if err != nil {
		logConfigErrors(log, fn.Name, err)
		os.Exit(1)
	}
	d, err := New(ctx, fn, cfg, Options{Log: log})
	if err != nil {
		log.Error("init failed", "function", fn.Name, "error", err.Error())
		os.Exit(1)
	}
	h, err := handler(d)
	if err != nil {
		log.Error("init failed", "function", fn.Name, "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h)
}

// HTTPMain is the whole main of one of the three HTTP functions: they
// differ only in the routes Router picks for fn.
func HTTPMain(fn manifest.Function) {
	Main(fn, func(d *Deps) (any, error) {
		rt, err := d.Router()
		if err != nil {
			return nil, err
		}
		return rt.Handle, nil
	})
}

// WebSocketMain is the whole main of one of the three WebSocket functions:
// they share the handlers WebSocket builds for fn, and route picks the one
// that function serves.
func WebSocketMain(fn manifest.Function, route func(*wshandler.WebSocket) any) {
	Main(fn, func(d *Deps) (any, error) {
		w, err := d.WebSocket(context.Background())
		if err != nil {
			return nil, err
		}
		return route(w), nil
	})
}

func logConfigErrors(log *slog.Logger, function string, err error) {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			logConfigErrors(log, function, errors.Join(j.Unwrap()...))
			continue
		}
		var ce *config.Error
		if errors.As(e, &ce) {
			log.Error("invalid configuration", "function", function, "variable", ce.Key, "problem", ce.Msg)
			continue
		}
		log.Error("invalid configuration", "function", function, "problem", e.Error())
	}
}

// Posters returns the @connections poster for an endpoint.
func (d *Deps) Posters() chat.PosterFor {
	return func(endpoint string) wsapi.Poster { return d.posters.Poster(endpoint) }
}

// Model builds the model client of the configured provider.
func (d *Deps) Model(ctx context.Context) (claude.Streamer, error) {
	if d.opts.Model != nil {
		return d.opts.Model, nil
	}
	switch d.Config.Model.Provider {
	case config.ProviderBedrock:
		return claude.NewBedrock(ctx, d.aws, claude.BedrockOptions{HTTPClient: d.opts.HTTPClient})
	default:
		keys := d.opts.Keys
		if keys == nil {
			keys = claude.NewSecretKeys(secretsmanager.NewFromConfig(d.aws), d.Config.Model.SecretName, d.Config.SecretTTL)
		}
		return claude.NewAnthropic(claude.AnthropicOptions{
			Keys:       keys,
			BaseURL:    d.Config.AnthropicBaseURL,
			HTTPClient: d.opts.HTTPClient,
		}), nil
	}
}

// Dispatcher is how sendMessage starts its reply: an asynchronous
// invocation of this same function in AWS.
func (d *Deps) Dispatcher() (chat.Dispatcher, error) {
	if d.opts.Dispatcher != nil {
		return d.opts.Dispatcher, nil
	}
	name := os.Getenv("AWS_LAMBDA_FUNCTION_NAME")
	if name == "" {
		return nil, errors.New("AWS_LAMBDA_FUNCTION_NAME is not set: the reply job cannot invoke its function")
	}
	return &InvokeDispatcher{Client: lambdasvc.NewFromConfig(d.aws), Function: name}, nil
}

// Verifier is the JWT verifier of the $connect route.
func (d *Deps) Verifier() auth.Verifier {
	if d.opts.Verifier != nil {
		return d.opts.Verifier
	}
	return auth.NewJWKSVerifier(auth.JWKSOptions{
		URL:        d.Config.JWKSURL,
		Issuer:     d.Config.JWTIssuer,
		Audience:   d.Config.JWTAudience,
		HTTPClient: d.opts.HTTPClient,
	})
}

// WebSocket builds the WebSocket handlers; the model and the dispatcher
// only for the message function.
func (d *Deps) WebSocket(ctx context.Context) (*wshandler.WebSocket, error) {
	w := &wshandler.WebSocket{
		Function:      d.Function,
		Store:         d.Store,
		Posters:       d.Posters(),
		Endpoint:      d.Config.ConnectionsEndpoint,
		ConnectionTTL: d.Config.ConnectionTTL,
		Log:           d.Log,
	}
	switch d.Function {
	case manifest.WebSocketConnect.Name:
		w.Verifier = d.Verifier()
	case manifest.WebSocketMessage.Name:
		model, err := d.Model(ctx)
		if err != nil {
			return nil, err
		}
		disp, err := d.Dispatcher()
		if err != nil {
			return nil, err
		}
		w.Chat = &chat.Service{
			Store:    d.Store,
			Model:    model,
			Posters:  d.Posters(),
			Dispatch: disp,
			Config:   d.Config,
			Log:      d.Log,
			Objects:  d.Bucket(),
		}
	}
	return w, nil
}

// Router builds the HTTP handler of one of the three HTTP functions.
func (d *Deps) Router() (*httpapi.Router, error) {
	rt := &httpapi.Router{Function: d.Function, Log: d.Log}
	switch d.Function {
	case manifest.ConversationAPI.Name:
		bucket := d.Bucket()
		rt.Routes = (&httpapi.Conversations{Store: d.Store, Objects: bucket}).Routes()
		maps.Copy(rt.Routes, (&httpapi.Uploads{Store: d.Store, Bucket: bucket, Limits: d.Limits(), PerDay: d.Config.MaxUploadsPerUserDay}).Routes())
	case manifest.PromptCRUD.Name:
		rt.Routes = (&httpapi.Prompts{Store: d.Store}).Routes()
	case manifest.UsageHandler.Name:
		rt.Routes = (&httpapi.Usage{Store: d.Store, DailyTokenLimit: d.Config.DailyTokenLimit}).Routes()
		maps.Copy(rt.Routes, (&httpapi.Models{Allowed: d.Config.AllowedModels}).Routes())
	default:
		return nil, fmt.Errorf("%s has no HTTP routes", d.Function)
	}
	return rt, nil
}
