// Package bench is the driver of `make bench`: it measures Buddy's six
// functions against Node.js and Python peers on this machine, drives the
// message path through the local dev server, and reports the figures as a
// table and as bench/results.json.
//
// Everything runs on loopback: the functions run unmodified under AWS's
// Lambda Runtime Interface Emulator (lambda/dev/rie), against DynamoDB
// Local and the project's stand-ins of the other services they call
// (lambda/dev: fakesecrets, fakelambda, fakeconnections, localissuer,
// fakemodel).
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/p2/buddy/infra/bundle"
	"github.com/p2/buddy/lambda/dev/rie"
	"github.com/p2/buddy/lambda/dev/standins"
	"github.com/p2/buddy/lambda/manifest"
)

// ErrSkip marks a measurement that cannot run here; the report says why
// instead of printing a number.
var ErrSkip = errors.New("skipped")

// Options size a run. The zero value of a count means "skip that part".
type Options struct {
	Root   string // module root; found from the working directory when empty
	OutDir string // build output; <root>/bench/out when empty

	// Cold start.
	Runs, Warmup int
	Functions    []manifest.Function // default: all six
	Node         string              // node binary of the peer; "" skips it
	Python       string              // python3 with boto3; "" skips it

	// Message path (separate process): one reply of ReplyTokens at
	// ReplyRate tokens/s.
	ReplyTokens, ReplyRate int
	// Dev server: TTFTSamples sequential warm requests, then Sockets
	// concurrent sockets each streaming ConcurrentTokens.
	TTFTSamples, Sockets, ConcurrentTokens int
	// Dev server: RoundTripSamples users counting the store round trips
	// before the model call, ResumeSamples drops and resumes.
	RoundTripSamples, ResumeSamples int
	// Dev server: the turns of one conversation whose input is priced
	// with and without prompt caching.
	CacheTurns int
	// Dev server: QuotaRounds rounds of QuotaSends sends of one user at
	// once against a small daily limit (quota.worst_overshoot_tokens).
	QuotaSends, QuotaRounds int
	// Dev server: the @connections posts of resume frames
	// (resume.posts_per_frame_max); ResumeStorm resume frames in its
	// storm case, 0 skipping the cases.
	ResumeStorm int
	// Dev server: AttachmentSamples uploads of a 3 MiB PNG sent to the
	// model and of a 10 MiB PDF completed (0 skips both).
	AttachmentSamples int
	// AttachmentRSSRuns weighs the message function under the emulator
	// with the largest request the attachment limits allow, that many
	// times (a fresh process each; the figure is the largest) (0 skips).
	AttachmentRSSRuns int

	Synth bool
	Zips  bool
	// Profile writes CPU profiles of the dev-server runs to OutDir.
	Profile bool

	Progress io.Writer
}

func (o *Options) defaults(ctx context.Context) error {
	if o.Root == "" {
		var err error
		if o.Root, err = bundle.FindModuleRoot("."); err != nil {
			return err
		}
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join(o.Root, "bench", "out")
	}
	if len(o.Functions) == 0 {
		o.Functions = manifest.Functions
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return os.MkdirAll(o.OutDir, 0o755)
}

// Run takes every measurement the options ask for. A part that cannot run
// leaves its figure null with a note; a part that runs and fails is an
// error, because a benchmark that silently drops a figure misleads.
func Run(ctx context.Context, o Options) (*Results, error) {
	if err := o.defaults(ctx); err != nil {
		return nil, err
	}
	r := &Results{
		Date:        time.Now().UTC().Format(time.RFC3339),
		Machine:     ThisMachine(),
		ColdStartMS: map[string]ColdStart{},
		ZipMB:       map[string]float64{},
	}
	logf := func(format string, a ...any) { fmt.Fprintf(o.Progress, format+"\n", a...) }
	// What else ran on the machine shows in the latencies: say so.
	loadStart := loadAverage()
	defer func() {
		r.Note("machine load average (1, 5, 15 min) at the start of the run: %s; at its end: %s", loadStart, loadAverage())
	}()

	var bins map[string]string
	if o.Runs > 0 || o.ReplyTokens > 0 || o.AttachmentRSSRuns > 0 {
		// Only the emulator runs need them; the dev server runs the
		// handlers in-process.
		logf("building the %d functions (GOOS=linux GOARCH=%s, deployment flags)", len(o.Functions), runtime.GOARCH)
		var err error
		if bins, err = bootstraps(bundle.HostBundler(o.Root), o.Functions); err != nil {
			return nil, err
		}
	}
	if o.Synth {
		logf("timing make synth (twice; the second, warm run counts)")
		// A failing synth is the CDK app's problem, not a reason to drop
		// the other figures: it is reported in a note.
		if d, err := TimeSynth(ctx, o.Root, filepath.Join(o.OutDir, "synth.log")); err != nil {
			r.Note("synth_s not measured: %v", err)
		} else {
			s := round(d.Seconds(), 2)
			r.SynthS = &s
		}
	}
	if o.Zips {
		if err := zips(&o, r); err != nil {
			return nil, err
		}
	}
	var h *harness
	if o.Runs > 0 || o.ReplyTokens > 0 || o.AttachmentRSSRuns > 0 {
		logf("building %s (go.mod's tool), starting DynamoDB Local and the stand-ins", rie.Command)
		var err error
		if h, err = newHarness(ctx, &o); err != nil {
			return nil, err
		}
		defer h.close()
	}
	if o.Runs > 0 {
		if err := coldStarts(ctx, &o, r, h, bins); err != nil {
			if !errors.Is(err, ErrSkip) {
				return nil, err
			}
			r.Note("cold start not measured: %v", err)
		}
	}
	if o.ReplyTokens > 0 {
		logf("message path: one %d-token reply at %d tokens/s under %s", o.ReplyTokens, o.ReplyRate, rie.Command)
		if err := messagePath(ctx, &o, r, h, bins); err != nil {
			if !errors.Is(err, ErrSkip) {
				return nil, err
			}
			r.Note("message path (posts, frames, peak RSS) not measured: %v", err)
		}
	}
	if o.AttachmentRSSRuns > 0 {
		logf("attachments: the message function's peak RSS with the largest request, %d runs under %s", o.AttachmentRSSRuns, rie.Command)
		if err := attachmentRSS(ctx, &o, r, h, bins); err != nil {
			if !errors.Is(err, ErrSkip) {
				return nil, err
			}
			r.Note("attachments.peak_rss_mb not measured: %v", err)
		}
	}
	if o.TTFTSamples > 0 || o.Sockets > 0 || o.RoundTripSamples > 0 || o.ResumeSamples > 0 || o.CacheTurns > 0 || (o.QuotaSends > 0 && o.QuotaRounds > 0) || o.ResumeStorm > 0 || o.AttachmentSamples > 0 {
		if err := devServer(ctx, &o, r); err != nil {
			if !errors.Is(err, ErrSkip) {
				return nil, err
			}
			r.Note("dev-server figures (ttft overhead, store round trips, resume, prompt caching, quota, resume posts, attachments, concurrent sockets) not measured: %v", err)
		}
	}
	if o.Profile {
		r.Note("profiled run (-pprof): the profilers stop the world and take CPU, so the dev-server figures of this run are inflated; profiles are in %s", o.OutDir)
	}
	r.Evaluate()
	return r, nil
}

// loadAverage is /proc/loadavg's first three fields ("unknown" where there
// is none).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func zips(o *Options, r *Results) error {
	fmt.Fprintf(o.Progress, "building for %s (the stack's bundle) and zipping as the CDK does\n", bundle.DeployArch)
	bins, err := bootstraps(bundle.NewBundler(o.Root, "bundle"), o.Functions)
	if err != nil {
		return err
	}
	zipDir := filepath.Join(o.OutDir, bundle.DeployArch)
	if err := os.MkdirAll(zipDir, 0o755); err != nil {
		return err
	}
	for _, fn := range o.Functions {
		size, err := ZipBootstrap(bins[fn.Dir], filepath.Join(zipDir, fn.Dir+".zip"))
		if err != nil {
			return err
		}
		r.ZipMB[fn.Name] = round(float64(size)/(1<<20), 2)
	}
	r.Note("zips: the stack's own arm64 bundle (.cache/bundle, infra/bundle), zipped as cdk-assets does")
	return nil
}

// bootstraps builds fns with b (a no-op when they are up to date) and
// returns the path of each bootstrap by function directory.
func bootstraps(b *bundle.Bundler, fns []manifest.Function) (map[string]string, error) {
	dirs, err := b.BundleFunctions(fns...)
	if err != nil {
		return nil, err
	}
	bins := make(map[string]string, len(fns))
	for _, fn := range fns {
		bins[fn.Dir] = filepath.Join(dirs[fn.Dir], "bootstrap")
	}
	return bins, nil
}

// harness is what the functions run in: the emulator, the stand-ins
// (DynamoDB Local included when it can start) and an empty home.
type harness struct {
	rie, rieVersion string
	stands          *standins.Set
	dbErr           error // why stands has no DynamoDB Local
	home            string
}

func newHarness(ctx context.Context, o *Options) (h *harness, err error) {
	h = &harness{}
	if h.rie, err = rie.Binary(ctx, o.Root); err != nil {
		return nil, err
	}
	if h.rieVersion, err = rie.Version(ctx, o.Root); err != nil {
		return nil, err
	}
	if h.stands, h.dbErr = startStandIns(ctx, true); h.dbErr != nil {
		// A figure that needs the store says why it is missing.
		if h.stands, err = startStandIns(ctx, false); err != nil {
			return nil, err
		}
	}
	if h.home, err = os.MkdirTemp(o.OutDir, "home-"); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

func (h *harness) env() Env { return Env{Home: h.home, Stands: h.stands} }

func (h *harness) close() {
	_ = h.stands.Close()
	if h.home != "" {
		os.RemoveAll(h.home)
	}
}

func coldStarts(ctx context.Context, o *Options, r *Results, h *harness, bins map[string]string) error {
	if h.stands.DB == nil {
		// The functions' first invocations call DynamoDB.
		return fmt.Errorf("%w: %v", ErrSkip, h.dbErr)
	}
	env := h.env()
	cs := env.GoContenders(bins)
	peersDir := filepath.Join(o.Root, "bench", "peers")
	if o.Node != "" {
		cs = append(cs, env.NodeContender(o.Node, filepath.Join(peersDir, "node")))
	} else {
		r.Note("node peer skipped (no node binary given; `make bench-peers` installs Node 22 in bench/peers/node)")
	}
	if o.Python != "" {
		cs = append(cs, env.PythonContender(o.Python, filepath.Join(peersDir, "python")))
	} else {
		r.Note("python peer skipped (no python with boto3 given; `make bench-peers` installs python3-boto3)")
	}
	fmt.Fprintf(o.Progress, "cold start: %d contenders × %d timed runs (+%d warm-up), interleaved\n", len(cs), o.Runs, o.Warmup)
	res, err := RunColdStarts(ctx, h.rie, cs, o.Runs, o.Warmup, o.Progress)
	if err != nil {
		return err
	}
	r.Machine.Peers = map[string]string{}
	for _, rt := range []string{RuntimeGo, RuntimeNode, RuntimePython} {
		if s, ok := res.Summary(rt); ok {
			s.Emulator, s.EmulatorVersion = rie.Command, h.rieVersion
			r.ColdStartMS[rt] = s
		}
	}
	r.ColdStartGoByFunctionMS = res.ByFunction(RuntimeGo)
	for _, c := range cs {
		if c.Runtime != RuntimeGo {
			r.Machine.Peers[c.Runtime] = peerVersion(res.Answers[c.Name])
		}
	}
	if g, ok := r.ColdStartMS[RuntimeGo]; ok && g.P50 > 0 {
		if n, ok := r.ColdStartMS[RuntimeNode]; ok {
			v := round(n.P50/g.P50, 1)
			r.RatioNode = &v
		}
		if p, ok := r.ColdStartMS[RuntimePython]; ok {
			v := round(p.P50/g.P50, 1)
			r.RatioPython = &v
		}
	}
	r.Note("cold start: the init duration %s %s reports (INIT REPORT: from starting the bootstrap to its first request for work), GOARCH=%s (the stack deploys %s); Go figure is the worst of the %d functions at each percentile; ratios are peer p50 / Go p50", rie.Command, h.rieVersion, runtime.GOARCH, bundle.DeployArch, len(bins))
	return nil
}

// LookPython returns python (default /usr/bin/python3, Debian's) when it
// can import boto3.
func LookPython(ctx context.Context, python string) (string, error) {
	if python == "" {
		python = "/usr/bin/python3"
	}
	if out, err := exec.CommandContext(ctx, python, "-c", "import boto3").CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s cannot import boto3 (%v: %s); `make bench-peers` installs python3-boto3", python, err, out)
	}
	return python, nil
}

// LookNode returns the Node 22 binary the peer's package.json pins.
func LookNode(root string) (string, error) {
	node := filepath.Join(root, "bench", "peers", "node", "node_modules", ".bin", "node")
	if _, err := os.Stat(node); err != nil {
		return "", fmt.Errorf("%s missing; `make bench-peers` installs the Node peer (npm ci)", node)
	}
	return node, nil
}
