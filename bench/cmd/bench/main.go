// Command bench is `make bench`: it measures Buddy on this machine (cold
// start against Node.js and Python peers, the message path, the local dev
// server, zip sizes, synth time), prints a Markdown table and writes
// bench/results.json. See docs/bench.md for what each figure means.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/p2/buddy/bench"
	"github.com/p2/buddy/infra/bundle"
)

func main() {
	var o bench.Options
	var out, python, node string
	var noPeers bool
	var timeout time.Duration
	flag.IntVar(&o.Runs, "runs", 30, "timed cold starts per contender (0 skips the cold start race)")
	flag.IntVar(&o.Warmup, "warmup", 2, "untimed rounds first, to fill the page cache")
	flag.StringVar(&node, "node", "", "node binary of the peer (default: the Node 22 pinned in bench/peers/node)")
	flag.StringVar(&python, "python", "/usr/bin/python3", "python3 with boto3 for the peer")
	flag.BoolVar(&noPeers, "no-peers", false, "time the Go functions only")
	flag.IntVar(&o.ReplyTokens, "reply-tokens", 4096, "tokens of the streamed reply (0 skips the message-path run)")
	flag.IntVar(&o.ReplyRate, "reply-rate", 100, "tokens per second of the streamed reply")
	flag.IntVar(&o.TTFTSamples, "ttft-samples", 200, "sequential warm requests for the ttft overhead (0 skips)")
	flag.IntVar(&o.Sockets, "sockets", 200, "concurrent streaming sockets (0 skips)")
	flag.IntVar(&o.ConcurrentTokens, "concurrent-tokens", 300, "tokens each concurrent socket streams")
	flag.IntVar(&o.RoundTripSamples, "round-trip-samples", 3, "users counting the store round trips before the model call (0 skips)")
	flag.IntVar(&o.ResumeSamples, "resume-samples", 20, "replies dropped mid-stream and resumed from a new socket (0 skips)")
	flag.IntVar(&o.CacheTurns, "cache-turns", 20, "turns of the conversation priced with and without prompt caching (0 skips)")
	flag.IntVar(&o.QuotaSends, "quota-sends", 50, "sends of one user at once against a small daily token limit, each round (0 skips)")
	flag.IntVar(&o.QuotaRounds, "quota-rounds", 5, "rounds of the quota run (0 skips)")
	flag.IntVar(&o.ResumeStorm, "resume-storm", 100, "resume frames of one connection during a running reply, in the resume posts cases (0 skips the cases)")
	flag.IntVar(&o.AttachmentSamples, "attachment-samples", 10, "uploads of a 3 MiB PNG sent to the model, and of a 10 MiB PDF completed (0 skips)")
	flag.IntVar(&o.AttachmentRSSRuns, "attachment-rss-runs", 3, "runs of the message function under the emulator with the largest request the attachment limits allow; the peak RSS is the largest (0 skips)")
	flag.BoolVar(&o.Synth, "synth", true, "time `make synth` (warm)")
	flag.BoolVar(&o.Zips, "zips", true, "build for arm64 and weigh the deployment zips")
	flag.BoolVar(&o.Profile, "pprof", false, "write CPU profiles of the dev-server runs to bench/out")
	flag.StringVar(&out, "out", "", "results file (default <module>/bench/results.json; - for none)")
	flag.DurationVar(&timeout, "timeout", 0, "stop everything after this long (0: no limit; Ctrl-C stops a run)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := run(ctx, o, out, node, python, noPeers); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o bench.Options, out, node, python string, noPeers bool) error {
	root, err := bundle.FindModuleRoot(".")
	if err != nil {
		return err
	}
	o.Root = root
	o.Progress = os.Stderr
	if !noPeers && o.Runs > 0 {
		if node == "" {
			if node, err = bench.LookNode(root); err != nil {
				return err
			}
		}
		if python, err = bench.LookPython(ctx, python); err != nil {
			return err
		}
		o.Node, o.Python = node, python
	}
	r, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	fmt.Println()
	r.Table(os.Stdout)
	if out == "-" {
		return nil
	}
	official := out == ""
	if official {
		out = filepath.Join(root, "bench", "results.json")
	}
	if err := r.WriteJSON(out); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "wrote", out)
	if !official {
		return nil
	}
	// Only a run that writes bench/results.json refreshes the documents,
	// so they always agree with it.
	docs, err := r.UpdateDocs([]string{filepath.Join(root, "docs", "bench.md"), filepath.Join(root, "README.md")})
	for _, d := range docs {
		fmt.Fprintln(os.Stderr, "updated the table in", d)
	}
	return err
}
