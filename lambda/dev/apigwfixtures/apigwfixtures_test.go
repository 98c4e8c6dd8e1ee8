package apigwfixtures_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p2/buddy/lambda/dev/apigwfixtures"
)

// upstream is aws-lambda-go's directory in the module cache, at the
// version go.mod requires.
func upstream(t *testing.T) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "go", "list", "-m", "-f", "{{.Dir}}", "github.com/aws/aws-lambda-go").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Fatalf("go list -m github.com/aws/aws-lambda-go: %q, %v", out, err)
	}
	return dir
}

func TestFixturesAreUpstreamsBytes(t *testing.T) {
	dir := upstream(t)
	files := map[string]string{"LICENSE": "LICENSE"}
	for _, n := range apigwfixtures.Names {
		files[n] = filepath.Join("events", "testdata", n)
	}
	for ours, theirs := range files {
		want, err := os.ReadFile(filepath.Join(dir, theirs))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("testdata", ours))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("testdata/%s differs from aws-lambda-go's %s: change fixtures in Go at load time, not in the file", ours, theirs)
		}
	}
}

func TestEditsChangeOnlyWhatTheyName(t *testing.T) {
	http := apigwfixtures.HTTP{
		RouteKey: "GET /prompts/{id}", Path: "/prompts/p1",
		PathParams: map[string]string{"id": "p1"},
		Claims:     map[string]string{"sub": "alice"},
	}.Event()
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"connect: connection id", apigwfixtures.Connect("c1=", "tok").Get("requestContext.connectionId"), "c1="},
		{"connect: token in the query string", apigwfixtures.Connect("c1=", "tok").Get("queryStringParameters.token"), "tok"},
		{"connect: the rest is upstream's", apigwfixtures.Connect("c1=", "tok").Get("queryStringParameters.name"), "me"},
		{"message: route", apigwfixtures.Message("c1=", "ping", `{"action":"ping"}`).Get("requestContext.routeKey"), "ping"},
		{"message: body", apigwfixtures.Message("c1=", "ping", `{"action":"ping"}`).Get("body"), `{"action":"ping"}`},
		{"message: the rest is upstream's", apigwfixtures.Message("c1=", "ping", "").Get("requestContext.messageId"), "R1knPc2ntjMCFIA="},
		{"disconnect: connection id", apigwfixtures.Disconnect("c1=").Get("requestContext.connectionId"), "c1="},
		{"http: route key", http.Get("routeKey"), "GET /prompts/{id}"},
		{"http: method", http.Get("requestContext.http.method"), "GET"},
		{"http: claims replace upstream's", len(http.Get("requestContext.authorizer.jwt.claims").(map[string]any)), 1},
		{"http: no body on a route without one", http.Get("body"), nil},
		{"http: no query string parameters without a query", http.Get("queryStringParameters"), nil},
		{"http: the rest is upstream's", http.Get("requestContext.accountId"), "123456789012"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if a, b := apigwfixtures.Load(apigwfixtures.WebSocketMessage), apigwfixtures.Load(apigwfixtures.WebSocketMessage); a.Set("body", "x").Get("body") == b.Get("body") {
		t.Error("Load returned a shared copy")
	}
}
