// Package versitygw builds the S3 emulator that lambda/dev/s3local runs:
// Versity's S3 gateway (github.com/versity/versitygw, Apache-2.0), a Go
// program, at the one version pinned here. It is built from source with
// `go install <package>@<version>`, which resolves the emulator's own
// dependencies apart from this module: nothing of it enters go.mod or
// go.sum, and nothing Buddy ships can link it. No prebuilt binary is ever
// downloaded.
//
// The binary goes to .cache/versitygw/<version>/bin in the repository, once;
// the build takes about a minute. `make tools` builds it (through
// lambda/dev/cmd/install-versitygw), and s3local builds it too when it is
// missing, so `go test` on a fresh clone works without make.
//
// This package uses the standard library only, so that `make tools` runs
// it without compiling the AWS SDK.
package versitygw

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// The emulator, pinned: this constant is the one place its version is
// written.
const (
	Module  = "github.com/versity/versitygw"
	Version = "v1.8.0"
	// Package is the command `go install` builds.
	Package = Module + "/cmd/versitygw"
)

// cacheDir is where the builds go, under the module root (ignored by git
// as all of .cache/ is).
const cacheDir = ".cache/versitygw"

// Path is where the binary of Version is, built or not, in the repository
// whose root (the directory holding go.mod) is root.
func Path(root string) string {
	name := "versitygw"
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	return filepath.Join(root, filepath.FromSlash(cacheDir), Version, "bin", name)
}

var mu sync.Mutex // one build at a time in this process; lock() for others

// Binary returns Path(root), building it first when it is not there.
// progress, when not nil, is told that a build starts (it takes about a
// minute); the go command's own output is quoted only when it fails.
// Only ctx bounds the build.
func Binary(ctx context.Context, root string, progress io.Writer) (string, error) {
	bin := Path(root)
	if isFile(bin) {
		return bin, nil
	}
	mu.Lock()
	defer mu.Unlock()
	// Test binaries of several packages start at once: the first builds,
	// the others wait for it and then find the binary.
	unlock, err := lock(filepath.Join(root, filepath.FromSlash(cacheDir)))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isFile(bin) {
		return bin, nil
	}
	if progress != nil {
		fmt.Fprintf(progress, "building %s@%s into %s (once; about a minute)\n", Package, Version, rel(root, bin))
	}
	if err := build(ctx, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// build runs go install into a fresh directory beside the final one and
// then renames the binary into place, so nobody ever runs a half-written
// one.
func build(ctx context.Context, bin string) error {
	versionDir := filepath.Dir(filepath.Dir(bin))
	if err := os.MkdirAll(versionDir, 0o755); err != nil {
		return fmt.Errorf("versitygw: %w", err)
	}
	tmp, err := os.MkdirTemp(versionDir, "build-")
	if err != nil {
		return fmt.Errorf("versitygw: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "install", Package+"@"+Version)
	// Outside any module and workspace, with none of the caller's go
	// flags: `go install pkg@version` then builds the emulator with the
	// versions its own go.mod names.
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off", "GOFLAGS=", "GO111MODULE=on")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("versitygw: go install %s@%s: %w\n%s", Package, Version, err, strings.TrimSpace(out.String()))
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return fmt.Errorf("versitygw: %w", err)
	}
	if err := os.Rename(filepath.Join(tmp, filepath.Base(bin)), bin); err != nil {
		return fmt.Errorf("versitygw: %w", err)
	}
	return nil
}

// ModuleRoot walks up from dir to the directory holding go.mod.
func ModuleRoot(dir string) (string, error) {
	for d := dir; ; {
		if isFile(filepath.Join(d, "go.mod")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("versitygw: no go.mod above %s, so %s cannot be found or built; run from the repository", dir, cacheDir)
		}
		d = parent
	}
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func rel(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return r
	}
	return p
}
