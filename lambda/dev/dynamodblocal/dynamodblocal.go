// Package dynalite runs a real dynalite process (the npm DynamoDB stand-in
// pinned in infra/package.json) for tests and for the local dev server, and
// creates Buddy's tables in it from lambda/schema, so the store is always
// exercised over the real DynamoDB wire protocol with the real SDK client.
//
// dynalite has no transactions, no TTL and no PartiQL; the store needs none
// of them (see lambda/schema).
//
// A package whose tests need DynamoDB starts one server per test binary in
// TestMain and lets every test use it with its own ids:
//
//	var db *dynalite.Local
//
//	func TestMain(m *testing.M) {
//		local, err := dynalite.StartWithTables(context.Background(), dynalite.Options{}, "test-")
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err) // says to run `make tools` when dynalite is missing
//			os.Exit(1)
//		}
//		db = local
//		code := m.Run()
//		local.Stop()
//		os.Exit(code)
//	}
//
// and then builds its store with store.NewDynamo(db.Client, db.Tables).
// Stop is not optional in spirit, but a test binary that dies without it
// does not leak the server on Linux: the child gets SIGKILL when its parent
// goes away.
package dynalite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// EnvBinary overrides where the dynalite executable is found.
const EnvBinary = "BUDDY_DYNALITE"

// binaryInRepo is where `make tools` (npm ci --prefix infra) installs it.
const binaryInRepo = "infra/node_modules/.bin/dynalite"

const (
	// readyTimeout bounds the wait for a fresh process to answer; node
	// starts in well under a second, so this only trips on a broken install.
	readyTimeout = 20 * time.Second
	// portAttempts bounds retries when a picked free port was taken by
	// someone else before dynalite could bind it.
	portAttempts = 3
	// tableStateMs keeps tables in CREATING briefly, as DynamoDB does, so
	// the wait-until-ACTIVE path runs in tests without costing dynalite's
	// default 500 ms per table.
	tableStateMs = "50"
	// stderrTail is how much of the process's stderr an error quotes.
	stderrTail = 4 << 10
)

// Options configure Start.
type Options struct {
	// Dir persists the data there (LevelDB); empty keeps it in memory.
	Dir string
	// Port to listen on; 0 picks a free one.
	Port int
	// Stdout receives the process's output (stdout and stderr); nil
	// discards it. Errors from Start quote the stderr either way.
	Stdout io.Writer
}

// Server is a running dynalite process.
type Server struct {
	endpoint string
	cmd      *exec.Cmd
	stderr   *tailBuffer
	done     chan struct{} // closed when the process has exited
	waitErr  error         // valid once done is closed
	stopOnce sync.Once
	stopErr  error
}

// Binary finds the dynalite executable: $BUDDY_DYNALITE when set, else
// infra/node_modules/.bin/dynalite in the module containing the working
// directory.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("dynalite: %s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("dynalite: %w", err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, filepath.FromSlash(binaryInRepo))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("dynalite: %s is not installed; run `make tools` (npm ci --prefix infra) in %s, or set %s", binaryInRepo, root, EnvBinary)
	}
	return p, nil
}

// moduleRoot walks up from dir to the directory holding go.mod.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("dynalite: no go.mod above %s, so %s cannot be found; run from the repository or set %s", dir, binaryInRepo, EnvBinary)
		}
		d = parent
	}
}

// Start runs dynalite on 127.0.0.1 and returns once it answers a real
// ListTables call. ctx bounds only the start; the server runs until Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("dynalite: data directory: %w", err)
		}
	}
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			// dynalite treats --port 0 as "unset" and takes 4567, so pick
			// one here; it can be taken again before dynalite binds it,
			// which the retry below absorbs.
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		s, err := start(ctx, bin, port, opts)
		if err == nil {
			return s, nil
		}
		if opts.Port != 0 || attempt == portAttempts || !errors.Is(err, errAddrInUse) {
			return nil, err
		}
	}
}

var errAddrInUse = errors.New("address in use")

func start(ctx context.Context, bin string, port int, opts Options) (*Server, error) {
	args := []string{
		"--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--createTableMs", tableStateMs, "--deleteTableMs", tableStateMs, "--updateTableMs", tableStateMs,
	}
	if opts.Dir != "" {
		args = append(args, "--path", opts.Dir)
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	s := &Server{
		endpoint: "http://127.0.0.1:" + strconv.Itoa(port),
		cmd:      cmd,
		stderr:   &tailBuffer{max: stderrTail},
		done:     make(chan struct{}),
	}
	cmd.Stdout = opts.Stdout
	cmd.Stderr = s.stderr
	if opts.Stdout != nil {
		cmd.Stderr = io.MultiWriter(s.stderr, opts.Stdout)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dynalite: start %s: %w", bin, err)
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls ListTables until it succeeds, the process exits, or the
// bounded wait ends.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	// A call to a port someone else holds hangs rather than failing, so an
	// exit must cut the call short, not just the pause between calls.
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	client := NewClient(s.endpoint, func(o *dynamodb.Options) { o.Retryer = aws.NopRetryer{} })
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		callCtx, cancelCall := context.WithTimeout(ctx, time.Second)
		_, err := client.ListTables(callCtx, &dynamodb.ListTablesInput{})
		cancelCall()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return s.exitError()
		case <-ctx.Done():
			select {
			case <-s.done:
				return s.exitError()
			default:
			}
			return fmt.Errorf("dynalite did not answer on %s (%v; last error: %v); stderr:\n%s", s.endpoint, ctx.Err(), err, s.stderr.String())
		case <-tick.C:
		}
	}
}

// exitError explains an exit during start; call it once done is closed.
func (s *Server) exitError() error {
	stderr := s.stderr.String()
	if strings.Contains(stderr, "EADDRINUSE") {
		return fmt.Errorf("dynalite: %s: %w", s.endpoint, errAddrInUse)
	}
	return fmt.Errorf("dynalite exited before answering (%v); stderr:\n%s", s.waitErr, stderr)
}

// Endpoint is the base URL of the server, e.g. http://127.0.0.1:4567.
func (s *Server) Endpoint() string { return s.endpoint }

// Stop kills the server's process group and waits for it to exit. It is
// safe to call more than once. An error means the process had died on its
// own before Stop.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.done:
			s.stopErr = fmt.Errorf("dynalite had exited on its own (%v); stderr:\n%s", s.waitErr, s.stderr.String())
			return
		default:
		}
		if err := killGroup(s.cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.stopErr = fmt.Errorf("dynalite: kill: %w", err)
		}
		<-s.done
	})
	return s.stopErr
}

// NewClient returns a DynamoDB client for a local endpoint: dummy static
// credentials (dynalite checks that a signature is present, not that it is
// valid) and a fixed region, so nothing is read from the developer's AWS
// configuration.
func NewClient(endpoint string, optFns ...func(*dynamodb.Options)) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		BaseEndpoint: aws.String(endpoint),
	}, optFns...)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("dynalite: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written: enough stderr to explain a
// failure without growing for the life of a dev server.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if extra := b.buf.Len() - b.max; extra > 0 {
		b.buf.Next(extra)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
