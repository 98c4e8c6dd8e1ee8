package fakemodel

import (
	"strings"
	"testing"
	"time"
)

func TestReplyWords(t *testing.T) {
	tests := []struct {
		name string
		said string
		n    int
		want string
	}{
		{name: "a short message is quoted whole", said: "hello there", n: 9, want: `Buddy offline stand-in here. You said: "hello there" This`},
		{name: "a long message is quoted up to eight words", said: "one two three four five six seven eight nine ten", n: 14,
			want: `Buddy offline stand-in here. You said: "one two three four five six seven eight…"`},
		{name: "a one-word message is quoted", said: "hi", n: 7, want: `Buddy offline stand-in here. You said: "hi"`},
		{name: "nothing said leaves out the quote", said: "", n: 6, want: "Buddy offline stand-in here. This reply"},
		{name: "a short reply cuts the notice", said: "hi", n: 2, want: "Buddy offline"},
		{name: "no tokens is no words", said: "hi", n: 0, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			words := replyWords(tt.said, tt.n)
			if len(words) != tt.n || strings.Join(words, " ") != tt.want {
				t.Errorf("replyWords(%q, %d) = %q (%d words), want %q", tt.said, tt.n, strings.Join(words, " "), len(words), tt.want)
			}
		})
	}
}

func TestParseDirectives(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		want     Plan
		wantSaid string
		wantErr  string
	}{
		{name: "no directive keeps the defaults", text: "just  talk", want: Plan{Tokens: 40}, wantSaid: "just talk"},
		{name: "every directive is read and removed", text: "a [[tokens=5]] b [[rate=2.5]] [[ttft=30]] [[fault=hang]] [[after=2]] [[times=3]] c",
			want: Plan{Tokens: 5, Rate: 2.5, TTFT: 30 * time.Millisecond, Hang: true, After: 2, Times: 3}, wantSaid: "a b c"},
		{name: "a status fault is kept as the status", text: "[[fault=529]]", want: Plan{Tokens: 40, Status: 529}},
		{name: "thinking sets the thinking length", text: "why [[thinking=12]]", want: Plan{Tokens: 40, Thinking: 12}, wantSaid: "why"},
		{name: "a negative thinking length is an error", text: "[[thinking=-3]]", wantErr: "thinking"},
		{name: "midstream strikes halfway by default", text: "[[tokens=10]] [[fault=midstream]]", want: Plan{Tokens: 10, Midstream: true, After: 5}},
		{name: "spaces inside the brackets are allowed", text: "[[ tokens = 7 ]]", want: Plan{Tokens: 7}},
		{name: "an unknown directive is an error", text: "[[speed=3]]", wantErr: "unknown directive"},
		{name: "a negative length is an error", text: "[[tokens=-1]]", wantErr: "tokens"},
		{name: "a status that is no error is an error", text: "[[fault=200]]", wantErr: "fault"},
		{name: "times must be at least one", text: "[[times=0]]", wantErr: "times"},
		{name: "describe takes no value", text: "what is this? [[describe]] [[tokens=3]]", want: Plan{Tokens: 3, Describe: true}, wantSaid: "what is this?"},
		{name: "describe with a value is an error", text: "[[describe=1]]", wantErr: "takes no value"},
		{name: "a directive that needs a value is an error without one", text: "[[tokens]]", wantErr: "[[tokens]]: want a whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Plan{Tokens: 40}
			said, err := parseDirectives(tt.text, &p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want one about %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if said != tt.wantSaid || p.Tokens != tt.want.Tokens || p.Thinking != tt.want.Thinking || p.Rate != tt.want.Rate || p.TTFT != tt.want.TTFT || p.Status != tt.want.Status ||
				p.Midstream != tt.want.Midstream || p.Hang != tt.want.Hang || p.After != tt.want.After || p.Times != tt.want.Times || p.Describe != tt.want.Describe {
				t.Errorf("parseDirectives(%q) = %q, %+v; want %q, %+v", tt.text, said, p, tt.wantSaid, tt.want)
			}
		})
	}
}
