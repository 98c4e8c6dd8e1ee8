package s3local_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/p2/buddy/lambda/dev/internal/devproc"
	"github.com/p2/buddy/lambda/dev/s3local"
	"github.com/p2/buddy/lambda/dev/s3local/versitygw"
)

func TestMain(m *testing.M) { os.Exit(s3local.RunTests(m)) }

// One test for both, since each start has a cost: Stop leaves no process,
// no listener and no temporary directory, and a given directory keeps its
// buckets and objects across a restart (with new credentials).
func TestStopLeavesNothingAndDataPersistsInDir(t *testing.T) {
	ctx := t.Context()
	temp, err := s3local.Start(ctx, s3local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = temp.Stop() })
	if runtime.GOOS == "linux" {
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(s3local.PID(temp)) + "/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(cmdline, []byte(temp.Credentials().SecretAccessKey)) {
			t.Error("the secret key is on the command line, which every user can read")
		}
	}
	assertStopLeavesNothing(t, temp, true)

	// A relative Dir is taken relative to the working directory.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Rel(wd, filepath.Join(t.TempDir(), "s3 data"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := s3local.Start(ctx, s3local.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Stop() })
	if err := first.CreateBucket(ctx, "keep"); err != nil {
		t.Fatal(err)
	}
	_, err = first.Client().PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("keep"), Key: aws.String("k"), Body: strings.NewReader("kept"), ContentType: aws.String("image/gif"),
	})
	if err != nil {
		t.Fatal(err)
	}
	assertStopLeavesNothing(t, first, false)

	second, err := s3local.Start(ctx, s3local.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	if second.Credentials().AccessKeyID == first.Credentials().AccessKeyID {
		t.Error("the restart has the same access key: credentials are not made up per start")
	}
	if err := second.CreateBucket(ctx, "keep"); err != nil {
		t.Errorf("CreateBucket of a bucket kept in Dir: %v", err)
	}
	ct, body, ok := object(t, second.Client(), "keep", "k")
	if !ok || ct != "image/gif" || string(body) != "kept" {
		t.Errorf("after the restart: %v, %q, %q; want the object written before it", ok, ct, body)
	}
}

func assertStopLeavesNothing(t *testing.T, s *s3local.Server, tempDir bool) {
	t.Helper()
	pid, host, dir := s3local.PID(s), strings.TrimPrefix(s.Endpoint(), "http://"), s.Dir()
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if runtime.GOOS == "linux" {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("process %d still exists after Stop (stat: %v)", pid, err)
		}
	}
	if c, err := net.Dial("tcp", host); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", host)
	}
	_, err := os.Stat(dir)
	if gone := errors.Is(err, os.ErrNotExist); gone != tempDir {
		t.Errorf("data directory %s removed: %v, want %v (stat: %v)", dir, gone, tempDir, err)
	}
}

// The emulator trusts its root credentials only, but it must still not be
// reachable from another machine.
func TestListensOnLoopbackOnly(t *testing.T) {
	_, port, err := net.SplitHostPort(strings.TrimPrefix(s3local.TestServer(t).Endpoint(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{"127.0.0.1"}
	for _, ip := range nonLoopbackAddrs(t) {
		hosts = append(hosts, ip.String())
	}
	for i, host := range hosts {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 2*time.Second)
		if err == nil {
			c.Close()
		}
		if answers, want := err == nil, i == 0; answers != want {
			t.Errorf("%s:%s accepts connections: %v, want %v (dial: %v)", host, port, answers, want, err)
		}
	}
}

// nonLoopbackAddrs is where the emulator must not answer.
func nonLoopbackAddrs(t *testing.T) []net.IP {
	t.Helper()
	out, err := devproc.NonLoopbackAddrs()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStartFailures(t *testing.T) {
	emptyModule := t.TempDir()
	if err := os.WriteFile(filepath.Join(emptyModule, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A binary already in emptyModule's cache that exits at once.
	bin := versitygw.Path(emptyModule)
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'cannot start: no backend' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, tc := range []struct {
		name    string
		dir     string // working directory; "" keeps the package's
		port    int
		wantErr string
	}{
		{"no module above the working directory says so", t.TempDir(), 0, "no go.mod"},
		{"early exit quotes the output", emptyModule, 0, "cannot start: no backend"},
		{"a port held by another process is reported", "", held.Addr().(*net.TCPAddr).Port, "address in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.dir != "" {
				t.Chdir(tc.dir)
			}
			s, err := s3local.Start(context.Background(), s3local.Options{Port: tc.port})
			if err == nil {
				s.Stop()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// The emulator is built apart from this module (go install pkg@version):
// nothing of it may enter go.mod or go.sum, so nothing that ships can link
// it and its dependencies never move Buddy's.
func TestEmulatorStaysOutOfTheModuleGraph(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := versitygw.ModuleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(versitygw.Module)) {
			t.Errorf("%s names %s", f, versitygw.Module)
		}
	}
	if rel, _ := filepath.Rel(root, versitygw.Path(root)); filepath.ToSlash(rel) != ".cache/versitygw/"+versitygw.Version+"/bin/versitygw" {
		t.Errorf("the binary is at %s, want it under .cache/versitygw/%s/bin", rel, versitygw.Version)
	}
}
