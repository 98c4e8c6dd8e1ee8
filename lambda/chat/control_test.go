package chat

import (
	"strings"
	"testing"

	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/wsapi"
)

// A stored reply is replayed in the frames it was first sent in; one
// whose cut does not add up (stored before frames were kept) is cut the
// way a burst would be, so a resume still gets all of its text.
func TestStoredFramesReplayTheFirstCut(t *testing.T) {
	long := strings.Repeat("x", wsapi.MaxDeltaTextBytes+10)
	tests := []struct {
		name string
		m    store.Message
		want []string
	}{
		{"answer and thinking as sent", store.Message{Text: "Hello world", Thinking: "hmm",
			Frames: []store.Frame{{Bytes: 3, Thinking: true}, {Bytes: 5}, {Bytes: 6}}}, []string{"hmm", "Hello", " world"}},
		{"no frames kept", store.Message{Text: long}, []string{long[:wsapi.MaxDeltaTextBytes], long[wsapi.MaxDeltaTextBytes:]}},
		{"frames short of the text", store.Message{Text: "Hello world", Frames: []store.Frame{{Bytes: 5}}}, []string{"Hello world"}},
		{"frames past the text", store.Message{Text: "Hi", Frames: []store.Frame{{Bytes: 5}}}, []string{"Hi"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, f := range storedFrames(tt.m) {
				got = append(got, f.text)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("frames %q, want %q", got, tt.want)
			}
		})
	}
}
