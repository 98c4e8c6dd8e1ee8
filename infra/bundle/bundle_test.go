package bundle_test

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p2/buddy/infra/bundle"
	"github.com/p2/buddy/lambda/manifest"
)

// root is the module root of this checkout.
var root string

func TestMain(m *testing.M) {
	var err error
	if root, err = bundle.FindModuleRoot("."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// TestBundleHandlers builds the six real mains exactly as `cdk synth` does
// (into .cache/bundle, shared with make synth: go build skips the link when
// a bootstrap is up to date) and checks each is a static linux/arm64 ELF.
// The bundler has already refused any main that links the CDK.
func TestBundleHandlers(t *testing.T) {
	b := bundle.NewBundler(root, "bundle")
	assets, err := b.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range manifest.Functions {
		dir := assets[fn.Dir]
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "bootstrap" {
			t.Errorf("%s: the asset directory must hold bootstrap only: %v", fn.Name, entries)
		}
		f, err := elf.Open(filepath.Join(dir, "bootstrap"))
		if err != nil {
			t.Errorf("%s: %v", fn.Name, err)
			continue
		}
		if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 {
			t.Errorf("%s: bootstrap is %v %v, want arm64", fn.Name, f.Machine, f.Class)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s: bootstrap is dynamically linked (CGO_ENABLED must be 0)", fn.Name)
			}
		}
		if f.Section(".symtab") != nil || f.Section(".debug_info") != nil {
			t.Errorf("%s: bootstrap has symbols or DWARF (-ldflags \"-s -w\")", fn.Name)
		}
		f.Close()
	}
}

// TestBundleIsReproducible builds one handler in two copies of the module
// at different paths: the bytes (and so the asset hash) must not depend on
// where the checkout is. The copies hold the real go.mod, go.sum and
// lambda/ tree; the build cache makes the second build a link only.
func TestBundleIsReproducible(t *testing.T) {
	fn := manifest.WebSocketDisconnect
	var sums []string
	for _, dir := range []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "checkout", "elsewhere")} {
		copyModule(t, dir)
		b := bundle.NewBundler(dir, "bundle")
		assets, err := b.BundleFunctions(fn)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, fileSum(t, filepath.Join(assets[fn.Dir], "bootstrap")))
	}
	if sums[0] != sums[1] {
		t.Errorf("%s built at two paths differs: %s vs %s", fn.Name, sums[0], sums[1])
	}
}

// TestBundleRefusals: a missing main fails with its path, and a main
// linking the CDK is refused before it is built.
func TestBundleRefusals(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join(root, "go.mod"), filepath.Join(dir, "go.mod"))
	copyFile(t, filepath.Join(root, "go.sum"), filepath.Join(dir, "go.sum"))
	_, err := bundle.NewBundler(dir, "bundle").BundleFunctions(manifest.PromptCRUD)
	if err == nil || !strings.Contains(err.Error(), "lambda/cmd/prompt-crud/main.go") {
		t.Errorf("missing main: %v", err)
	}

	main := filepath.Join(dir, "lambda", "cmd", "prompt-crud", "main.go")
	if err := os.MkdirAll(filepath.Dir(main), 0o755); err != nil {
		t.Fatal(err)
	}
	src := "package main\n\nimport _ \"github.com/aws/jsii-runtime-go\"\n\nfunc main() {}\n"
	if err := os.WriteFile(main, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = bundle.NewBundler(dir, "bundle").BundleFunctions(manifest.PromptCRUD)
	if err == nil || !strings.Contains(err.Error(), "must never link the CDK") {
		t.Errorf("CDK-linking main: %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, ".cache", "bundle", "prompt-crud", "bootstrap")); statErr == nil {
		t.Errorf("a CDK-linking main was built")
	}
}

// TestFunctionsLinkNeitherToolingNorTheCDK lists what each of the six
// mains links, as deployed (go list -deps with the deployment tags): no
// package of the local tooling (lambda/dev, bench), of the CDK app or of
// the CDK itself.
func TestFunctionsLinkNeitherToolingNorTheCDK(t *testing.T) {
	args := []string{"list", "-deps", "-tags", "lambda.norpc", "-f", "{{.ImportPath}}"}
	for _, fn := range manifest.Functions {
		t.Run(fn.Name, func(t *testing.T) {
			cmd := exec.Command("go", append(args, "./lambda/cmd/"+fn.Dir)...)
			cmd.Dir = root
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps: %v", err)
			}
			deps := strings.Fields(string(out))
			if len(deps) < 10 {
				t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
			}
			for _, dep := range deps {
				if what, ok := bundle.Forbidden(dep); ok {
					t.Errorf("%s links %s (%s)", fn.Dir, dep, what)
				}
			}
		})
	}
}

func TestForbiddenDeps(t *testing.T) {
	for dep, want := range map[string]bool{
		"github.com/aws/aws-cdk-go/awscdk/v2":       true,
		"github.com/aws/jsii-runtime-go":            true,
		"github.com/p2/buddy/lambda/dev/devserver":  true,
		"github.com/p2/buddy/bench":                 true,
		"github.com/p2/buddy/bench/cmd/bench":       true,
		"github.com/p2/buddy/lambda/dev/rie":        true,
		"github.com/p2/buddy/infra/buddy":           true,
		"github.com/p2/buddy/lambda/chat":           false,
		"github.com/p2/buddy/lambda/devicesettings": false,
		"github.com/aws/aws-sdk-go-v2/service/s3":   false,
	} {
		if _, got := bundle.Forbidden(dep); got != want {
			t.Errorf("Forbidden(%q) = %v, want %v", dep, got, want)
		}
	}
}

func TestToolchainPin(t *testing.T) {
	for gomod, want := range map[string]string{
		"module m\n\ngo 1.26.8\n":                       "go1.26.8",
		"module m\n\ngo 1.26.0\n\ntoolchain go1.26.8\n": "go1.26.8",
	} {
		if got, err := bundle.Toolchain([]byte(gomod)); err != nil || got != want {
			t.Errorf("Toolchain(%q) = %q, %v; want %q", gomod, got, err, want)
		}
	}
}

// copyModule copies go.mod, go.sum and lambda/ (the handlers' whole
// source, embedded files included; tests and testdata left out) to dir.
func copyModule(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []string{"go.mod", "go.sum"} {
		copyFile(t, filepath.Join(root, f), filepath.Join(dir, f))
	}
	src := filepath.Join(root, "lambda")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		if !strings.HasSuffix(path, "_test.go") && d.Type().IsRegular() {
			copyFile(t, path, filepath.Join(dir, rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
