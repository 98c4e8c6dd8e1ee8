package dynamodblocal

import (
	"strings"
	"testing"
)

func TestTailBufferSeesTheMarker(t *testing.T) {
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
			b := newTailBuffer(64, bindFailure)
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			var seen bool
			select {
			case <-b.seen:
				seen = true
			default:
			}
			if seen != tc.want {
				t.Errorf("seen = %v, want %v", seen, tc.want)
			}
			if len(b.String()) > 64 {
				t.Errorf("kept %d bytes, more than the tail of 64", len(b.String()))
			}
		})
	}
}
