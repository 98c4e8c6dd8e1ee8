// Package awstest sends the stand-ins of AWS services (lambda/dev/fake*)
// the requests their tests need and no SDK client sends: unsigned ones, or
// ones outside the API.
package awstest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// SigV4 is an Authorization header of the shape the SDKs send. The
// stand-ins check only its scheme, since they cannot know the secret a
// signature is made with, so a request carrying it counts as signed.
const SigV4 = "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/service/aws4_request, SignedHeaders=host, Signature=00"

// Do sends method url with body and header as they are, and returns the
// answer, its body closed (the tests read the status and the headers); a
// failure to reach the server fails the test.
func Do(t testing.TB, method, url, body string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}
