package buddy_test

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCDKJSON pins cdk.json: the app command (the cached binary of
// infra/main.go), approval for broadened permissions, and every feature
// flag the linked aws-cdk-lib recommends for new projects, with its
// recommended value (read from the library's own
// recommended-feature-flags.json, the list `cdk init` writes).
func TestCDKJSON(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "cdk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		App             string         `json:"app"`
		RequireApproval string         `json:"requireApproval"`
		Context         map[string]any `json:"context"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	equal(t, "app", cfg.App, "go build -buildvcs=false -o .cache/buddy-cdk ./infra && ./.cache/buddy-cdk")
	equal(t, "requireApproval", cfg.RequireApproval, "broadening")

	recommended := recommendedFlags(t)
	if len(recommended) < 50 {
		t.Fatalf("only %d recommended flags found", len(recommended))
	}
	for flag, want := range recommended {
		got, ok := cfg.Context[flag]
		if !ok {
			t.Errorf("cdk.json lacks the recommended flag %s (%v)", flag, want)
			continue
		}
		equal(t, "cdk.json "+flag, got, want)
	}
}

func recommendedFlags(t *testing.T) map[string]any {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", "github.com/aws/aws-cdk-go/awscdk/v2")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m: %v (run make tools: go mod download)", err)
	}
	dir, version, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	tgz := filepath.Join(dir, "jsii", "aws-cdk-lib-"+strings.TrimPrefix(version, "v")+".tgz")
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatalf("%v (run make tools: go mod download)", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s has no package/recommended-feature-flags.json", tgz)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "package/recommended-feature-flags.json" {
			var flags map[string]any
			if err := json.NewDecoder(tr).Decode(&flags); err != nil {
				t.Fatal(err)
			}
			return flags
		}
	}
}
