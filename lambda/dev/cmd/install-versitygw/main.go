// Command install-versitygw builds the S3 emulator pinned in
// lambda/dev/s3local/versitygw into .cache/versitygw when it is not there
// yet (`make tools` runs it); otherwise it does nothing. It is not a Lambda
// function.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/p2/buddy/lambda/dev/s3local/versitygw"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "install-versitygw:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := versitygw.ModuleRoot(wd)
	if err != nil {
		return err
	}
	_, err = versitygw.Binary(ctx, root, os.Stderr)
	return err
}
