// Command infra is the CDK app of Buddy (cdk.json runs it): it reads the
// context (-c key=value), builds the handlers and writes the cloud
// assembly of the chosen stage. See docs/deploy.md.
package main

import (
	"fmt"
	"os"

	"github.com/aws/jsii-runtime-go"

	"github.com/p2/buddy/infra/buddy"
	"github.com/p2/buddy/infra/bundle"
)

func main() {
	defer jsii.Close()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "buddy: "+err.Error())
		jsii.Close()
		os.Exit(1)
	}
}

func run() error {
	root, err := bundle.FindModuleRoot(".")
	if err != nil {
		return err
	}
	app := buddy.NewApp(nil, "")
	if _, _, err := buddy.Build(app, bundle.NewBundler(root, "bundle")); err != nil {
		return err
	}
	app.Synth(nil)
	return nil
}
