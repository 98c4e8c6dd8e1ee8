package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Markers delimit the generated table in a Markdown file. `make bench`
// rewrites what lies between them, so docs/bench.md (and the README, when
// it carries the markers) always shows the latest run, and no figure is
// ever typed by hand.
const (
	TableBegin = "<!-- bench:table:begin -->"
	TableEnd   = "<!-- bench:table:end -->"
)

// errNoMarkers: the file does not carry the generated table.
var errNoMarkers = errors.New("no bench table markers")

// UpdateDoc replaces the text between the markers in path with the table.
func (r *Results) UpdateDoc(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin := bytes.Index(b, []byte(TableBegin))
	end := bytes.Index(b, []byte(TableEnd))
	if begin < 0 || end < begin {
		return fmt.Errorf("%s: %w", path, errNoMarkers)
	}
	var t strings.Builder
	r.Table(&t)
	var out bytes.Buffer
	out.Write(b[:begin+len(TableBegin)])
	out.WriteString("\n" + t.String())
	out.Write(b[end:])
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// UpdateDocs updates every file of paths that carries the markers and
// returns the ones it changed; files without markers are left alone.
func (r *Results) UpdateDocs(paths []string) ([]string, error) {
	var done []string
	for _, p := range paths {
		err := r.UpdateDoc(p)
		switch {
		case err == nil:
			done = append(done, p)
		case errors.Is(err, errNoMarkers), errors.Is(err, os.ErrNotExist):
		default:
			return done, err
		}
	}
	return done, nil
}
