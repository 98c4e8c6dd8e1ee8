package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/p2/buddy/lambda/errcode"
)

func TestBase64BodiesAreDecoded(t *testing.T) {
	// API Gateway base64-encodes bodies it does not take for text; the
	// router must decode them before the route reads the JSON.
	tests := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"valid base64", base64.StdEncoding.EncodeToString([]byte(`{"name":"b64","text":"ok"}`)), 201, ""},
		{"invalid base64", "not base64!", 400, errcode.BadRequest},
	}
	a := newAPI(t, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := request("alice", "POST /prompts", nil, nil, tt.body)
			ev.IsBase64Encoded = true
			resp, err := a.prompts.Handle(t.Context(), ev)
			if err != nil || resp.StatusCode != tt.status {
				t.Fatalf("%d %v %s, want %d", resp.StatusCode, err, resp.Body, tt.status)
			}
			if resp.Headers["Content-Type"] != "application/json" {
				t.Errorf("content type %q", resp.Headers["Content-Type"])
			}
			if tt.code != "" {
				var body map[string]any
				if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
					t.Fatalf("body is not JSON: %q", resp.Body)
				}
				checkError(t, body, tt.code)
			}
		})
	}
}
