// Package dynamodblocal runs Amazon DynamoDB Local (AWS's own emulator:
// DynamoDBLocal.jar from the npm package amplify-dynamodb-simulator pinned
// in infra/package.json, on Debian's Java runtime) for tests, the local dev
// server and the benchmarks, and creates Buddy's tables in it from
// lambda/manifest, so the store is always exercised over the real DynamoDB
// wire protocol with the real SDK client.
//
// DynamoDB Local has transactions, conditional writes and PartiQL. It
// accepts the TTL setting, which CreateTables makes, but never deletes
// expired items (the store checks expiresAt itself, as it must anyway:
// DynamoDB deletes late).
//
// DynamoDB Local checks no credentials; it listens on 127.0.0.1 only
// (loopback.go says how, since it has no option for it).
//
// The JVM takes seconds to start, so a package whose tests need DynamoDB
// starts one server per test binary in TestMain and lets every test use it
// with its own ids:
//
//	var db *dynamodblocal.Local
//
//	func TestMain(m *testing.M) {
//		local, err := dynamodblocal.StartWithTables(context.Background(), dynamodblocal.Options{}, "test-")
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err) // says to run `make tools` when java or the jar is missing
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
// does not leak the JVM on Linux: the child gets SIGKILL when its parent
// goes away.
package dynamodblocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/p2/buddy/lambda/dev/internal/devproc"
)

// emulatorInRepo is where `make tools` (npm ci --prefix infra) puts the
// jar and, beside it, DynamoDBLocal_lib (its jars and sqlite4java's native
// libraries).
const emulatorInRepo = "infra/node_modules/amplify-dynamodb-simulator/emulator"

const (
	// portAttempts bounds retries when a picked free port was taken by
	// someone else before the JVM could bind it.
	portAttempts = 3
	// pollInterval paces the readiness calls: the JVM needs seconds, so
	// finer polling would only take CPU from it.
	pollInterval = 50 * time.Millisecond
	// stderrTail is how much of the process's stderr an error quotes.
	stderrTail = 4 << 10
)

// Options configure Start.
type Options struct {
	// Dir persists the data there (-dbPath, one SQLite file); empty keeps
	// it in memory (-inMemory).
	Dir string
	// Port to listen on; 0 picks a free one.
	Port int
	// Stdout receives the process's output (stdout and stderr); nil
	// discards it. Errors from Start quote the stderr either way.
	Stdout io.Writer
}

// Server is a running DynamoDB Local process.
type Server struct {
	endpoint string
	port     int
	cmd      *exec.Cmd
	stderr   *devproc.Tail
	done     chan struct{} // closed when the process has exited
	waitErr  error         // valid once done is closed
	stopOnce sync.Once
	stopErr  error
}

// Paths finds java on PATH and DynamoDBLocal.jar with its library folder
// under infra/node_modules in the module containing the working directory.
func Paths() (java, jar, lib string, err error) {
	java, err = exec.LookPath("java")
	if err != nil {
		return "", "", "", fmt.Errorf("dynamodblocal: no java on PATH (DynamoDB Local is a Java program); run `make tools`, which installs Debian's openjdk-17-jre-headless: %w", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", "", "", fmt.Errorf("dynamodblocal: %w", err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return "", "", "", err
	}
	dir := filepath.Join(root, filepath.FromSlash(emulatorInRepo))
	jar, lib = filepath.Join(dir, "DynamoDBLocal.jar"), filepath.Join(dir, "DynamoDBLocal_lib")
	for _, p := range []string{jar, lib} {
		if _, err := os.Stat(p); err != nil {
			return "", "", "", fmt.Errorf("dynamodblocal: %s is not installed; run `make tools` (npm ci --prefix infra) in %s", filepath.ToSlash(emulatorInRepo+"/"+filepath.Base(p)), root)
		}
	}
	return java, jar, lib, nil
}

// moduleRoot walks up from dir to the directory holding go.mod.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("dynamodblocal: no go.mod above %s, so %s cannot be found; run from the repository", dir, emulatorInRepo)
		}
		d = parent
	}
}

// Start runs DynamoDB Local and returns once it answers a real ListTables
// call. Only ctx bounds the wait (a busy machine can take many seconds to
// start a JVM); the server runs until Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	java, jar, lib, err := Paths()
	if err != nil {
		return nil, err
	}
	if opts.Dir != "" {
		// -dbPath is taken relative to the JVM's working directory.
		if opts.Dir, err = filepath.Abs(opts.Dir); err != nil {
			return nil, fmt.Errorf("dynamodblocal: data directory: %w", err)
		}
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("dynamodblocal: data directory: %w", err)
		}
	}
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			// DynamoDB Local cannot be told to pick a port, so pick one
			// here; it can be taken again before the JVM binds it, which
			// the retry below absorbs.
			if port, err = devproc.FreePort(); err != nil {
				return nil, fmt.Errorf("dynamodblocal: %w", err)
			}
		}
		s, err := start(ctx, java, jar, lib, port, opts)
		if err == nil {
			return s, nil
		}
		if opts.Port != 0 || attempt == portAttempts || !errors.Is(err, errAddrInUse) {
			return nil, err
		}
	}
}

var errAddrInUse = errors.New("address in use")

func start(ctx context.Context, java, jar, lib string, port int, opts Options) (*Server, error) {
	// DynamoDB Local's own command line, which its ServerRunner parses.
	ddbArgs := []string{
		"-port", strconv.Itoa(port), "-disableTelemetry",
		// One database whatever the credentials and region: the
		// functions the benchmarks run sign as another account and
		// region than NewClient, and must see the same tables.
		"-sharedDb",
	}
	if opts.Dir != "" {
		ddbArgs = append(ddbArgs, "-dbPath", opts.Dir)
	} else {
		ddbArgs = append(ddbArgs, "-inMemory")
	}
	conf := loopbackConfig(ddbArgs)
	args := []string{
		// C1 only: starting then takes half the CPU (about 3 s
		// instead of 6 on two cores) and the store tests run a third
		// faster; C2 would win back about 10% per call only after
		// thousands of calls.
		java, "-XX:TieredStopAtLevel=1",
		"-Djava.library.path=" + lib,
		// Jetty's logging as ServerRunner sets it, which it cannot do
		// here: Jetty's XML configuration starts logging first.
		"-Dorg.eclipse.jetty.util.log.announce=false", "-Dorg.eclipse.jetty.LEVEL=WARN",
		// The jar's manifest puts DynamoDBLocal_lib on the class path,
		// jetty-xml included; the configuration is read from stdin.
		"-cp", jar, "org.eclipse.jetty.xml.XmlConfiguration", "/dev/stdin",
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = bytes.NewReader(conf)
	cmd.SysProcAttr = devproc.SysProcAttr()
	// -disableTelemetry alone still sets telemetry up, which writes
	// dynamodb-local-metadata.json into the working directory; the
	// variable skips that. The working directory is a scratch one all the
	// same, so nothing the JVM writes there lands in the repository.
	cmd.Env = append(os.Environ(), "DDB_LOCAL_TELEMETRY=0")
	cmd.Dir = os.TempDir()
	s := &Server{
		endpoint: "http://" + loopbackHost + ":" + strconv.Itoa(port),
		port:     port,
		cmd:      cmd,
		stderr:   devproc.NewTail(stderrTail, bindFailure, nil),
		done:     make(chan struct{}),
	}
	cmd.Stdout = opts.Stdout
	cmd.Stderr = s.stderr
	if opts.Stdout != nil {
		cmd.Stderr = io.MultiWriter(s.stderr, opts.Stdout)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dynamodblocal: start %s: %w", args[0], err)
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

// bindFailure is what DynamoDB Local prints when its port is taken. The
// JVM then stays up without listening (its worker threads keep it alive),
// so the message, not an exit, is the signal.
var bindFailure = []byte("java.net.BindException")

// waitReady polls ListTables until the JVM answers on its port, it fails,
// or ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A call to a port someone else holds can hang rather than fail, so a
	// failure must cut the call short, not just the pause between calls.
	go func() {
		select {
		case <-s.done:
		case <-s.stderr.Seen():
		case <-ctx.Done():
		}
		cancel()
	}()
	client := NewClient(s.endpoint, func(o *dynamodb.Options) { o.Retryer = aws.NopRetryer{} })
	for {
		_, err := client.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)})
		if err == nil {
			// Someone else's server on the port answers too; only ours
			// will do.
			var ours bool
			if ours, err = devproc.ListensOn(s.cmd.Process.Pid, s.port); ours {
				return nil
			}
			if err == nil {
				err = fmt.Errorf("port %d answers, but not from DynamoDB Local's process %d", s.port, s.cmd.Process.Pid)
			}
		}
		select {
		case <-s.done:
		case <-s.stderr.Seen():
		case <-ctx.Done():
		case <-time.After(pollInterval):
			continue
		}
		if err := s.startFailure(); err != nil {
			return err
		}
		return fmt.Errorf("dynamodblocal: no answer on %s (%v; last error: %v); stderr:\n%s", s.endpoint, ctx.Err(), err, s.stderr.String())
	}
}

// startFailure explains why the process cannot become ready, or is nil
// while it still may.
func (s *Server) startFailure() error {
	select {
	case <-s.stderr.Seen():
		return fmt.Errorf("dynamodblocal: %s: %w; stderr:\n%s", s.endpoint, errAddrInUse, s.stderr.String())
	case <-s.done:
		return fmt.Errorf("dynamodblocal: exited before answering (%v); stderr:\n%s", s.waitErr, s.stderr.String())
	default:
		return nil
	}
}

// Endpoint is the base URL of the server, e.g. http://127.0.0.1:8000.
func (s *Server) Endpoint() string { return s.endpoint }

// Stop kills the server's process group and waits for it to exit. It is
// safe to call more than once. An error means the process had died on its
// own before Stop. SIGKILL loses nothing with Dir set: DynamoDB Local
// commits every write to its SQLite file before it answers.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.done:
			s.stopErr = fmt.Errorf("dynamodblocal: had exited on its own (%v); stderr:\n%s", s.waitErr, s.stderr.String())
			return
		default:
		}
		if err := devproc.KillGroup(s.cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.stopErr = fmt.Errorf("dynamodblocal: kill: %w", err)
		}
		<-s.done
	})
	return s.stopErr
}

// NewClient returns a DynamoDB client for a local endpoint: dummy static
// credentials (DynamoDB Local checks that a signature is present, not that
// it is valid) and a fixed region, so nothing is read from the developer's
// AWS configuration.
func NewClient(endpoint string, optFns ...func(*dynamodb.Options)) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		BaseEndpoint: aws.String(endpoint),
	}, optFns...)
}
