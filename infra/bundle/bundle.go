// Package bundle compiles the six handlers exactly as they are deployed:
// the stack's assets (infra/buddy), the benchmark and the tests that run
// the built binaries all call it, so there is one build recipe. It links
// no CDK, so tools that only need the binaries stay light.
package bundle

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/p2/buddy/lambda/manifest"
)

// ModulePath is the Go module of this repository.
const ModulePath = "github.com/p2/buddy"

// BuildFlags are the deployment build flags. With BuildEnv they
// make a handler's bootstrap a pure function of the source and the Go
// toolchain: -trimpath drops the checkout path, -buildvcs=false the VCS
// state, -s -w the symbol table and DWARF (which would carry paths).
var BuildFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w"}

// ForbiddenDeps are import path prefixes a Lambda binary must never link,
// each with the reason: the CDK and its runtime (tens of megabytes, and no
// use at run time), and the local tooling, whose stand-ins and test
// servers must never be deployed.
var ForbiddenDeps = map[string]string{
	"github.com/aws/aws-cdk-go/":     "the CDK",
	"github.com/aws/jsii-runtime-go": "the CDK",
	"github.com/aws/constructs-go/":  "the CDK",
	"github.com/cdklabs/":            "the CDK",
	ModulePath + "/lambda/dev/":      "local tooling",
	ModulePath + "/bench/":           "local tooling",
	ModulePath + "/infra/":           "the CDK app",
}

// Forbidden names what dep is when a Lambda binary must not link it.
func Forbidden(dep string) (what string, ok bool) {
	for prefix, what := range ForbiddenDeps {
		if dep == strings.TrimSuffix(prefix, "/") || strings.HasPrefix(dep, prefix) {
			return what, true
		}
	}
	return "", false
}

// buildEnvOverrides are set on every go command the bundler runs; the keys
// are removed from the inherited environment first, so nothing the
// developer exported can change the binary. An empty value means unset.
// GOEXPERIMENT cannot be neutralized by a value (even "none" is recorded in
// the binary), so it is unset here and checkGoEnv refuses one configured
// with `go env -w`.
var buildEnvOverrides = map[string]string{
	"CGO_ENABLED":  "0",
	"GOOS":         "linux",
	"GOARM64":      "v8.0",
	"GOFIPS140":    "off",
	"GOFLAGS":      "-buildvcs=false",
	"GOEXPERIMENT": "",
	"GOWORK":       "off",
}

// DeployArch is the architecture the stack deploys (arm64 costs about 20%
// less per GB-second than x86_64).
const DeployArch = "arm64"

// Bundler compiles the handlers of manifest.Functions into per-function asset
// directories: <OutDir>/<fn.Dir>/bootstrap.
type Bundler struct {
	// Root is the module root (the directory holding go.mod).
	Root string
	// OutDir receives one directory per function.
	OutDir string
	// GOARCH is the target architecture; empty means DeployArch. Tests and
	// the benchmark build for the host to run the binaries.
	GOARCH string

	once   sync.Once
	assets map[string]string
	err    error
}

// NewBundler bundles the module at root for DeployArch into
// root/.cache/<sub>.
func NewBundler(root, sub string) *Bundler {
	return &Bundler{Root: root, OutDir: filepath.Join(root, ".cache", sub)}
}

// HostBundler builds the handlers for this machine's architecture, so that
// tests and the benchmark can run them: into root/.cache/bundle-<goarch>,
// or on an arm64 machine the stack's own bundle. Every user of one
// directory shares the build: the first builds, the others find the
// binaries up to date.
func HostBundler(root string) *Bundler {
	if runtime.GOARCH == DeployArch {
		return NewBundler(root, "bundle")
	}
	return &Bundler{Root: root, OutDir: filepath.Join(root, ".cache", "bundle-"+runtime.GOARCH), GOARCH: runtime.GOARCH}
}

func (b *Bundler) arch() string {
	if b.GOARCH == "" {
		return DeployArch
	}
	return b.GOARCH
}

// FindModuleRoot walks up from dir to the go.mod of this module.
func FindModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && modulePathOf(b) == ModulePath {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of module %s above %s: run the CDK app from the repository", ModulePath, dir)
		}
	}
}

func modulePathOf(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return f[1]
		}
	}
	return ""
}

// Toolchain is the Go toolchain the handlers are built with: go.mod's
// toolchain line, else its go line. Pinning it (GOTOOLCHAIN) is what makes
// the binaries identical on every machine: a different compiler would
// produce different bytes. Go fetches that toolchain from the module proxy
// when the local one differs.
func Toolchain(gomod []byte) (string, error) {
	var goLine string
	for line := range strings.Lines(string(gomod)) {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case "toolchain":
			return f[1], nil
		case "go":
			goLine = "go" + f[1]
		}
	}
	if goLine == "" {
		return "", errors.New("go.mod has no go line")
	}
	return goLine, nil
}

// BuildEnv is the environment of the go commands the bundler runs.
func (b *Bundler) BuildEnv() ([]string, error) {
	gomod, err := os.ReadFile(filepath.Join(b.Root, "go.mod"))
	if err != nil {
		return nil, err
	}
	tc, err := Toolchain(gomod)
	if err != nil {
		return nil, err
	}
	set := maps.Clone(buildEnvOverrides)
	set["GOARCH"] = b.arch()
	set["GOTOOLCHAIN"] = tc
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			env = append(env, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if set[k] != "" {
			env = append(env, k+"="+set[k])
		}
	}
	return env, nil
}

// Bundle builds every function once per Bundler and returns the asset
// directory of each, by fn.Dir.
func (b *Bundler) Bundle() (map[string]string, error) {
	b.once.Do(func() { b.assets, b.err = b.bundle(manifest.Functions) })
	return b.assets, b.err
}

// BundleFunctions builds the given functions, every call.
func (b *Bundler) BundleFunctions(fns ...manifest.Function) (map[string]string, error) {
	return b.bundle(fns)
}

func (b *Bundler) bundle(fns []manifest.Function) (map[string]string, error) {
	var missing []string
	pkgs := make([]string, len(fns))
	for i, fn := range fns {
		pkgs[i] = "./lambda/cmd/" + fn.Dir
		if _, err := os.Stat(filepath.Join(b.Root, "lambda", "cmd", fn.Dir, "main.go")); err != nil {
			missing = append(missing, fmt.Sprintf("lambda/cmd/%s/main.go (function %s)", fn.Dir, fn.Name))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("bundling: handler main missing: %s; each function is compiled from its main during synth", strings.Join(missing, ", "))
	}
	env, err := b.BuildEnv()
	if err != nil {
		return nil, fmt.Errorf("bundling: %w", err)
	}
	if err := os.MkdirAll(b.OutDir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockDir(b.OutDir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if out, err := b.goCmd(env, "env", "GOEXPERIMENT"); err != nil {
		return nil, fmt.Errorf("bundling: go env: %w", err)
	} else if exp := strings.TrimSpace(string(out)); exp != "" {
		return nil, fmt.Errorf("bundling: GOEXPERIMENT=%s is configured (go env -w); handlers are built without experiments so that every machine produces the same bytes: run go env -u GOEXPERIMENT", exp)
	}
	if err := b.checkDeps(env, pkgs); err != nil {
		return nil, err
	}

	// One go command compiles every package the mains share, once, without
	// linking (go list -export); the per-function builds below then only
	// link, or do nothing when a bootstrap is up to date. Started side by
	// side on a cold cache, each of them would compile the SDKs again on
	// its own.
	if _, err := b.goCmd(env, append(append([]string{"list", "-export", "-f", "{{.ImportPath}}"}, BuildFlags...), pkgs...)...); err != nil {
		return nil, fmt.Errorf("bundling: %w", err)
	}
	assets := make(map[string]string, len(fns))
	errs := make([]error, len(fns))
	sem := make(chan struct{}, max(1, runtime.NumCPU()))
	var wg sync.WaitGroup
	for i, fn := range fns {
		dir := filepath.Join(b.OutDir, fn.Dir)
		assets[fn.Dir] = dir
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = b.build(env, pkgs[i], dir)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("bundling %s (%s): %w", fn.Name, pkgs[i], errs[i])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return assets, nil
}

// checkDeps refuses a main that is not a main package or links the CDK.
func (b *Bundler) checkDeps(env, pkgs []string) error {
	args := append([]string{"list", "-tags", "lambda.norpc", "-f", "{{.ImportPath}}\t{{.Name}}\t{{join .Deps \" \"}}"}, pkgs...)
	out, err := b.goCmd(env, args...)
	if err != nil {
		return fmt.Errorf("bundling: go list: %w", err)
	}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 3)
		if len(f) != 3 {
			continue
		}
		if f[1] != "main" {
			errs = append(errs, fmt.Errorf("bundling: %s is package %s, not a main package", f[0], f[1]))
		}
		for dep := range strings.FieldsSeq(f[2]) {
			if what, ok := Forbidden(dep); ok {
				errs = append(errs, fmt.Errorf("bundling: %s links %s: a Lambda binary must never link %s", f[0], dep, what))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// build writes dir/bootstrap and leaves nothing else in dir, so the asset
// hash (a fingerprint of the directory) is the hash of the binary. go build
// does not relink when the existing output is up to date.
func (b *Bundler) build(env []string, pkg, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != "bootstrap" {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	args := append([]string{"build"}, BuildFlags...)
	args = append(args, "-o", filepath.Join(dir, "bootstrap"), pkg)
	_, err = b.goCmd(env, args...)
	return err
}

func (b *Bundler) goCmd(env []string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = b.Root
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if _, lookErr := exec.LookPath("go"); lookErr != nil {
			return nil, fmt.Errorf("the Go toolchain is needed to build the handlers: %w", lookErr)
		}
		return nil, fmt.Errorf("%w\n%s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// lockDir serializes bundlers sharing an output directory (a synth and a
// test run at the same time).
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
