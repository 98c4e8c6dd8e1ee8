package bench

import (
	"encoding/json"
	"strings"
)

// peerVersion reads the runtime version a peer's handler reports in its
// first answer, so the table names what was actually measured.
func peerVersion(answer []byte) string {
	var resp struct{ Body string }
	if json.Unmarshal(answer, &resp) != nil {
		return ""
	}
	var body struct {
		Runtime string `json:"runtime"`
		Boto3   string `json:"boto3"`
	}
	if json.Unmarshal([]byte(resp.Body), &body) != nil {
		return ""
	}
	parts := []string{body.Runtime}
	if body.Boto3 != "" {
		parts = append(parts, "boto3 "+body.Boto3)
	}
	return strings.Join(parts, ", ")
}
