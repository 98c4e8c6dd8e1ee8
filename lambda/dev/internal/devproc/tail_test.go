package devproc

import (
	"strings"
	"testing"
)

func TestTailSeesTheMarkerAndKeepsTheTail(t *testing.T) {
	marker := []byte("java.net.BindException")
	for _, tc := range []struct {
		name   string
		writes []string
		want   bool
	}{
		{"in one write", []string{"Exception in thread \"main\" java.net.BindException: Address already in use\n"}, true},
		{"split across writes", []string{"Caused by: java.net.Bind", "Exception: Address already in use\n"}, true},
		{"after more than the tail", []string{strings.Repeat("x", 100), "java.net.BindException", strings.Repeat("y", 100)}, true},
		{"absent", []string{"Initializing DynamoDB Local with the following configuration:\n", "Port:\t8000\n"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var copied strings.Builder
			b := NewTail(64, marker, &copied)
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			var seen bool
			select {
			case <-b.Seen():
				seen = true
			default:
			}
			if seen != tc.want {
				t.Errorf("seen = %v, want %v", seen, tc.want)
			}
			if len(b.String()) > 64 {
				t.Errorf("kept %d bytes, more than the tail of 64", len(b.String()))
			}
			if copied.String() != strings.Join(tc.writes, "") {
				t.Errorf("copied %q, want every write", copied.String())
			}
		})
	}
}
