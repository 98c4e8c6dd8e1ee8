// Command buddy-dev is `make dev`: the whole Buddy backend on this machine
// (lambda/dev/devserver), until Ctrl-C. It is not a Lambda function.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/p2/buddy/lambda/dev/devserver"
)

func main() {
	httpAddr := flag.String("http-addr", envOr("BUDDY_DEV_HTTP_ADDR", "127.0.0.1:8787"), "listen address of the HTTP API and the chat page (env BUDDY_DEV_HTTP_ADDR)")
	wsAddr := flag.String("ws-addr", envOr("BUDDY_DEV_WS_ADDR", "127.0.0.1:8788"), "listen address of the WebSocket API (env BUDDY_DEV_WS_ADDR)")
	state := flag.String("state", envOr("BUDDY_DEV_STATE", ".dev-state"), "state folder: the store's data and the token signing key (env BUDDY_DEV_STATE)")
	stage := flag.String("stage", devserver.DefaultStage, "stage of the WebSocket API")
	verbose := flag.Bool("v", false, "also log every request's summary line, not only warnings and errors")
	flag.Parse()

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "_aws" { // CloudWatch metric metadata: noise here
				return slog.Attr{}
			}
			return a
		},
	}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Starting waits for the store (a JVM: seconds) as long as it takes;
	// Ctrl-C stops it.
	srv, err := devserver.Start(ctx, devserver.Config{
		HTTPAddr: *httpAddr,
		WSAddr:   *wsAddr,
		Stage:    *stage,
		StateDir: *state,
		// The key stays in this process's memory: it is handed to the
		// model client and never written anywhere.
		AnthropicAPIKey: os.Getenv("ANTHROPIC_API_KEY"),
		Getenv:          os.Getenv,
		Log:             log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "buddy-dev:", err)
		if errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintln(os.Stderr, "buddy-dev: pick other ports with -http-addr/-ws-addr (or DEV_FLAGS with make)")
		}
		os.Exit(1)
	}
	printBanner(srv, *state)

	<-ctx.Done()
	stop() // a second Ctrl-C kills at once
	fmt.Fprintln(os.Stderr, "\nbuddy-dev: stopping (closing sockets, finishing replies, stopping DynamoDB Local and the S3 emulator)…")
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "buddy-dev:", err)
		os.Exit(1)
	}
}

func printBanner(srv *devserver.Server, state string) {
	model := "Claude (" + srv.Model + ") with ANTHROPIC_API_KEY from the environment"
	if srv.StandIn != nil {
		model = "OFFLINE STAND-IN (ANTHROPIC_API_KEY is not set): replies are generated locally\n" +
			"             and report the model " + devserver.StandInModelPrefix + srv.Model
	}
	fmt.Printf(`Buddy dev server
  model      %s
  store      DynamoDB Local at %s, data in %s (make dev-reset clears it)
  uploads    S3 emulator (versitygw) at %s, bucket %s, data in the same folder
  WebSocket  %s?token=<JWT>
  HTTP API   %s  (GET /conversations, /prompts, /usage; Authorization: Bearer <JWT>)
  chat page  %s
  token      curl -s -X POST %s/dev/token -d '{"sub":"alice"}'
Ctrl-C stops everything.
`, model, srv.DynamoEndpoint, state, srv.S3Endpoint, srv.UploadsBucket, srv.WebSocketURL, srv.HTTPURL, srv.PageURL, srv.HTTPURL)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
