package buddy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// assetHash matches the content hashes of assets (S3 keys, metadata).
var assetHash = regexp.MustCompile(`\b[0-9a-f]{64}\b`)

// TestGoldenTemplates compares each stage's template with
// testdata/Buddy-<stage>.template.json, the file `cdk synth` writes, asset
// hashes normalized: a change to the infrastructure shows up in the diff of
// the pull request. Refresh with: go test ./infra/... -update
func TestGoldenTemplates(t *testing.T) {
	for _, stage := range []string{"dev", "prod"} {
		s := synth(t, stage)
		got := assetHash.ReplaceAll(s.raw, []byte("<asset-hash>"))
		if !bytes.HasSuffix(got, []byte("\n")) {
			got = append(got, '\n')
		}
		path := filepath.Join("testdata", "Buddy-"+stage+".template.json")
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v: create it with go test ./infra/... -update", err)
		}
		if !bytes.Equal(got, want) {
			gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
			line := 0
			for line < len(gl) && line < len(wl) && bytes.Equal(gl[line], wl[line]) {
				line++
			}
			show := func(ls [][]byte) string {
				if line >= len(ls) {
					return "(end of file)"
				}
				return string(bytes.TrimSpace(ls[line]))
			}
			t.Errorf("%s is out of date (first difference at line %d: golden %q, now %q).\n"+
				"If the infrastructure change is intended, run: go test ./infra/... -update",
				path, line+1, show(wl), show(gl))
		}
	}
}
