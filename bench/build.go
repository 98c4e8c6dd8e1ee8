package bench

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/p2/buddy/lambda/schema"
)

// BuildFlags are the deployment build flags of DESIGN §1. The benchmark
// builds with exactly these so it times and weighs what ships.
var BuildFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w"}

// ModuleRoot is the directory of the go.mod that holds this package, found
// through the go command so the benchmark runs from any directory.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the Buddy module")
	}
	return filepath.Dir(gomod), nil
}

// BuildFunctions builds the given functions for linux/goarch as deployed and
// returns the path of each bootstrap by function directory. One go build
// for all of them lets the toolchain share package loading and link in
// parallel.
func BuildFunctions(ctx context.Context, root, outDir, goarch string, fns []schema.Function) (map[string]string, error) {
	tmp, err := os.MkdirTemp(outDir, "build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	args := append([]string{"build"}, BuildFlags...)
	args = append(args, "-o", tmp+string(filepath.Separator))
	for _, fn := range fns {
		args = append(args, "./lambda/cmd/"+fn.Dir)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = buildEnv(goarch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build (GOARCH=%s): %w\n%s", goarch, err, stderr.String())
	}
	bins := make(map[string]string, len(fns))
	for _, fn := range fns {
		dst := filepath.Join(outDir, goarch, fn.Dir, "bootstrap")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := os.Rename(filepath.Join(tmp, fn.Dir), dst); err != nil {
			return nil, err
		}
		bins[fn.Dir] = dst
	}
	return bins, nil
}

// buildEnv is the environment of the stack's bundler
// (infra/buddy/bundle.go, buildEnvOverrides) with goarch for GOARCH: the
// overridden keys are dropped from the inherited environment first, so
// nothing a developer exported changes what is weighed or timed.
func buildEnv(goarch string) []string {
	overrides := map[string]string{
		"CGO_ENABLED":  "0",
		"GOOS":         "linux",
		"GOARCH":       goarch,
		"GOARM64":      "v8.0",
		"GOFIPS140":    "off",
		"GOFLAGS":      "-buildvcs=false",
		"GOEXPERIMENT": "",
		"GOWORK":       "off",
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := overrides[k]; !ok {
			env = append(env, kv)
		}
	}
	for k, v := range overrides {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// ZipBootstrap writes the deployment zip of one function the way the CDK
// packages a directory asset (cdk-assets: deflate at level 9, fixed 1980
// timestamps, file mode kept) and returns its size in bytes.
func ZipBootstrap(bin, zipPath string) (int64, error) {
	src, err := os.Open(bin)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return 0, err
	}
	f, err := os.Create(zipPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestCompression)
	})
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.SetMode(st.Mode().Perm() | 0o555)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(w, src); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	zst, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return zst.Size(), nil
}
