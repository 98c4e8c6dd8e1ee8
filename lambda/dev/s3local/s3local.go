// Package s3local runs a local S3 for tests, the local dev server and the
// benchmarks: Versity's S3 gateway (versitygw, pinned and built from source
// by lambda/dev/s3local/versitygw into .cache), on its posix backend, on a
// free loopback port, with credentials made up at each start.
//
// It is here because it is faithful where Buddy's uploads depend on S3
// itself: it verifies SigV4 signatures (headers and presigned URLs) and
// evaluates POST policies as S3 does (content-length-range, exact and
// starts-with conditions, form fields the policy does not cover,
// expiration), so a test that a body of the wrong size or type is refused
// is refused by the emulator, not by Buddy. It keeps content types and
// object tags. It has no lifecycle rules that expire anything, and no
// encryption at rest (see the README's "What was verified, and how").
//
// A package whose tests need S3 shares one emulator per test binary:
//
//	func TestMain(m *testing.M) { os.Exit(s3local.RunTests(m)) }
//
//	func TestX(t *testing.T) {
//		client, bucket := s3local.TestBucket(t)
//		...
//	}
//
// Stop is not optional in spirit, but a test binary that dies without it
// does not leak the emulator on Linux: the child gets SIGKILL when its
// parent goes away.
package s3local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/p2/buddy/lambda/dev/internal/devproc"
	"github.com/p2/buddy/lambda/dev/s3local/versitygw"
)

// Region is the one region the emulator answers for (its --region);
// requests signed for another are refused.
const Region = "us-east-1"

// loopbackHost is the one address the emulator listens on.
const loopbackHost = "127.0.0.1"

const (
	// portAttempts bounds retries when a picked free port was taken by
	// someone else before the emulator could bind it.
	portAttempts = 3
	// pollInterval paces the readiness calls; a Go program listens
	// within milliseconds.
	pollInterval = 10 * time.Millisecond
	// outputTail is how much of the process's output an error quotes.
	outputTail = 4 << 10
)

// Options configure Start.
type Options struct {
	// Dir keeps the buckets and objects there (one directory per bucket,
	// one file per object, metadata in extended attributes), across
	// restarts; empty uses a temporary directory that Stop removes.
	Dir string
	// Port to listen on; 0 picks a free one.
	Port int
	// Output receives the process's output (stdout and stderr); nil
	// discards it. Errors from Start quote it either way.
	Output io.Writer
}

// Server is a running emulator.
type Server struct {
	endpoint string
	port     int
	creds    aws.Credentials
	dir      string
	tempDir  bool // dir is Start's own, removed by Stop
	cmd      *exec.Cmd
	out      *devproc.Tail
	done     chan struct{} // closed when the process has exited
	waitErr  error         // valid once done is closed
	stopOnce sync.Once
	stopErr  error
}

// Start runs the emulator, building it first if .cache has no binary of
// the pinned version (about a minute, once), and returns once it answers a
// signed ListBuckets. Only ctx bounds the wait; the server runs until Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("s3local: %w", err)
	}
	root, err := versitygw.ModuleRoot(wd)
	if err != nil {
		return nil, fmt.Errorf("s3local: %w", err)
	}
	bin, err := versitygw.Binary(ctx, root, nil)
	if err != nil {
		return nil, fmt.Errorf("s3local: %w (`make tools` builds it too)", err)
	}
	dir, tempDir := opts.Dir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "s3local-"); err != nil {
			return nil, fmt.Errorf("s3local: data directory: %w", err)
		}
		tempDir = true
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("s3local: data directory: %w", err)
	}
	// The emulator runs in the data directory, and takes a relative one
	// relative to that.
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("s3local: data directory: %w", err)
	}
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			// The emulator cannot be told to pick a port and say which,
			// so pick one here; it can be taken again before the
			// emulator binds it, which the retry below absorbs.
			if port, err = devproc.FreePort(); err != nil {
				return nil, fmt.Errorf("s3local: %w", err)
			}
		}
		s, err := start(ctx, bin, dir, port, opts.Output)
		if err == nil {
			s.tempDir = tempDir
			return s, nil
		}
		if opts.Port != 0 || attempt == portAttempts || !errors.Is(err, errAddrInUse) {
			if tempDir {
				os.RemoveAll(dir)
			}
			return nil, err
		}
	}
}

var errAddrInUse = errors.New("address in use")

func start(ctx context.Context, bin, dir string, port int, output io.Writer) (*Server, error) {
	creds, err := newCredentials()
	if err != nil {
		return nil, err
	}
	args := []string{
		"--port", loopbackHost + ":" + strconv.Itoa(port),
		"--region", Region,
		// No line per request on stdout; S3's keep-alive connections.
		"--quiet", "--keep-alive",
		"posix", dir,
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = devproc.SysProcAttr()
	// The keys travel in the environment (what --access and --secret
	// read when absent), not on the command line, which every user of
	// the machine can read in /proc.
	cmd.Env = append(childEnv(),
		"ROOT_ACCESS_KEY_ID="+creds.AccessKeyID, "ROOT_SECRET_ACCESS_KEY="+creds.SecretAccessKey)
	cmd.Dir = dir
	s := &Server{
		endpoint: "http://" + loopbackHost + ":" + strconv.Itoa(port),
		port:     port,
		creds:    creds,
		dir:      dir,
		cmd:      cmd,
		out:      devproc.NewTail(outputTail, nil, output),
		done:     make(chan struct{}),
	}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("s3local: start %s: %w", bin, err)
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx); err != nil {
		_ = s.kill()
		return nil, err
	}
	return s, nil
}

// childEnv is the little of this process's environment the emulator gets:
// it reads its configuration from variables too (VGW_*, ROOT_ACCESS_KEY,
// ...), and none of a developer's may change what Start sets.
func childEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// newCredentials makes up the root user's keys for one start, so nothing
// but this process's clients can sign for it.
func newCredentials() (aws.Credentials, error) {
	b := make([]byte, 28)
	if _, err := rand.Read(b); err != nil {
		return aws.Credentials{}, fmt.Errorf("s3local: credentials: %w", err)
	}
	h := hex.EncodeToString(b)
	return aws.Credentials{
		AccessKeyID:     "LOCAL" + strings.ToUpper(h[:15]),
		SecretAccessKey: h[15:],
		Source:          "s3local",
	}, nil
}

// waitReady polls a signed ListBuckets until the emulator answers on its
// port, it exits, or ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.done:
		case <-ctx.Done():
		}
		cancel()
	}()
	client := s.Client(func(o *s3.Options) { o.Retryer = aws.NopRetryer{} })
	for {
		_, err := client.ListBuckets(ctx, &s3.ListBucketsInput{})
		if err == nil {
			// Someone else's server on the port could answer too
			// (though not to these credentials); only ours will do.
			var ours bool
			if ours, err = devproc.ListensOn(s.cmd.Process.Pid, s.port); ours {
				return nil
			}
			if err == nil {
				err = fmt.Errorf("port %d answers, but not from the emulator's process %d", s.port, s.cmd.Process.Pid)
			}
		}
		select {
		case <-s.done:
		case <-ctx.Done():
		case <-time.After(pollInterval):
			continue
		}
		select {
		case <-s.done: // it exiting also ends ctx: say why it did
			if strings.Contains(s.out.String(), "address already in use") {
				return fmt.Errorf("s3local: %s: %w; output:\n%s", s.endpoint, errAddrInUse, s.out.String())
			}
			return fmt.Errorf("s3local: versitygw exited before answering (%v); output:\n%s", s.waitErr, s.out.String())
		default:
			return fmt.Errorf("s3local: no answer on %s (%v; last error: %v); output:\n%s", s.endpoint, ctx.Err(), err, s.out.String())
		}
	}
}

// Endpoint is the base URL of the server, e.g. http://127.0.0.1:7070.
func (s *Server) Endpoint() string { return s.endpoint }

// Credentials are the keys the server accepts, made up at Start.
func (s *Server) Credentials() aws.Credentials { return s.creds }

// Dir is the data directory.
func (s *Server) Dir() string { return s.dir }

// Client returns an S3 client for the server, signing with its
// credentials.
func (s *Server) Client(optFns ...func(*s3.Options)) *s3.Client {
	return NewClient(s.endpoint, s.creds, optFns...)
}

// NewClient returns an S3 client for a local endpoint: path-style
// addressing (http://127.0.0.1:P/bucket/key; no DNS for bucket
// subdomains), Region, and static credentials, so nothing is read from the
// developer's AWS configuration. Its presigned POSTs and URLs
// (s3.NewPresignClient) point at the endpoint too.
func NewClient(endpoint string, creds aws.Credentials, optFns ...func(*s3.Options)) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		Credentials:  credentials.StaticCredentialsProvider{Value: creds},
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
	}, optFns...)
}

// CreateBucket creates the bucket; one that exists already is fine (a
// data directory kept across restarts holds its buckets).
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	return CreateBucket(ctx, s.Client(), name)
}

// CreateBucket creates the bucket with client; one that exists already is
// fine.
func CreateBucket(ctx context.Context, client *s3.Client, name string) error {
	_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if err == nil || errors.As(err, &owned) || errors.As(err, &exists) {
		return nil
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return fmt.Errorf("s3local: create bucket %q: %s: %s", name, api.ErrorCode(), api.ErrorMessage())
	}
	return fmt.Errorf("s3local: create bucket %q: %w", name, err)
}

// Stop kills the emulator's process group, waits for it to exit and, when
// Start made the data directory, removes it. It is safe to call more than
// once. An error means the process had died on its own before Stop.
// SIGKILL loses nothing acknowledged: the emulator answers a write once
// the object's file is linked into place.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.stopErr = s.kill()
		if s.tempDir {
			if err := os.RemoveAll(s.dir); err != nil && s.stopErr == nil {
				s.stopErr = fmt.Errorf("s3local: remove data directory: %w", err)
			}
		}
	})
	return s.stopErr
}

func (s *Server) kill() error {
	select {
	case <-s.done:
		return fmt.Errorf("s3local: versitygw had exited on its own (%v); output:\n%s", s.waitErr, s.out.String())
	default:
	}
	var err error
	if kerr := devproc.KillGroup(s.cmd.Process); kerr != nil && !errors.Is(kerr, os.ErrProcessDone) {
		err = fmt.Errorf("s3local: kill: %w", kerr)
	}
	<-s.done
	return err
}
