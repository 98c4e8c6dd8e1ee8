package fakeconnections_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"

	"github.com/p2/buddy/lambda/dev/fakeconnections"
	"github.com/p2/buddy/lambda/dev/internal/awstest"
	"github.com/p2/buddy/lambda/wsapi"
)

// stage is where the handler is reached, as a function's
// CONNECTIONS_ENDPOINT names the stage.
const stage = "/prod"

func start(t *testing.T, rec *fakeconnections.Recorder) (*fakeconnections.Handler, *apigatewaymanagementapi.Client, string) {
	t.Helper()
	h := fakeconnections.NewHandler(rec)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		BaseEndpoint:     aws.String(srv.URL + stage),
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("local", "local", ""),
		RetryMaxAttempts: 1,
	})
	return h, c, srv.URL + stage
}

func TestConnectionsAPIAnswersLikeAPIGateway(t *testing.T) {
	var hooked []string
	rec := &fakeconnections.Recorder{}
	rec.OnPost = func(p fakeconnections.Post) { hooked = append(hooked, string(p.Data)) }
	h, c, _ := start(t, rec)
	ctx := t.Context()
	// Base64-like ids, as API Gateway's; '/' and '+' travel escaped.
	const open, closed, slashed = "R1kmxc2VNjMCFIA=", "AAAAAAAAAAAAAAA=", "Ab+c/d="
	rec.Close(closed)
	post := func(id string, data []byte) error {
		_, err := c.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: data})
		return err
	}
	tests := []struct {
		name    string
		id      string
		data    []byte
		wantErr any
	}{
		{"a post is recorded under its connection id", open, []byte(`{"type":"pong"}`), nil},
		{"a post of exactly 128 KB is accepted", open, bytes.Repeat([]byte("x"), wsapi.MaxMessageBytes), nil},
		{"a post over 128 KB is refused with 413", open, bytes.Repeat([]byte("x"), wsapi.MaxMessageBytes+1), new(*types.PayloadTooLargeException)},
		{"a post to a closed connection is gone", closed, []byte("x"), new(*types.GoneException)},
		{"an id holding '/' and '+' is one connection", slashed, []byte("s"), nil},
	}
	for _, tt := range tests {
		err := post(tt.id, tt.data)
		switch {
		case tt.wantErr == nil && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr != nil && !errors.As(err, tt.wantErr):
			t.Errorf("%s: error %v, want %T", tt.name, err, tt.wantErr)
		}
	}
	posts := rec.PostsTo(open)
	if len(posts) != 2 || string(posts[0].Data) != `{"type":"pong"}` || posts[0].At.IsZero() || len(hooked) != 3 {
		t.Fatalf("recorded %d posts to %q (hook saw %d in all), want its 2 accepted (3 in all)", len(posts), open, len(hooked))
	}
	if s := rec.PostsTo(slashed); len(s) != 1 || string(s[0].Data) != "s" {
		t.Errorf("posts to %q: %+v, want the one sent", slashed, s)
	}

	info, err := c.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(open)})
	if err != nil || info.ConnectedAt == nil || info.ConnectedAt.Sub(posts[0].At).Abs() > time.Second {
		t.Errorf("GetConnection: %+v, %v", info, err)
	}
	if _, err := c.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(open)}); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	var gone *types.GoneException
	if err := post(open, []byte("late")); !errors.As(err, &gone) {
		t.Errorf("post after DeleteConnection: %v, want GoneException", err)
	}
	if _, err := c.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(open)}); !errors.As(err, &gone) {
		t.Errorf("GetConnection after DeleteConnection: %v, want GoneException", err)
	}
	if st := h.Stats(); st != (fakeconnections.Stats{Posts: 3, Gone: 2, TooLarge: 1}) {
		t.Errorf("stats %+v, want 3 posts, 2 gone, 1 too large", st)
	}
}

func TestRequestsOutsideTheAPIAreRefused(t *testing.T) {
	_, _, endpoint := start(t, &fakeconnections.Recorder{})
	tests := []struct {
		name, method, path string
		signed             bool
		want               int
	}{
		{"an unsigned post", http.MethodPost, "/@connections/abc", false, http.StatusForbidden},
		{"a path without a connection id", http.MethodPost, "/@connections/", true, http.StatusForbidden},
		{"a deeper path", http.MethodPost, "/@connections/abc/def", true, http.StatusForbidden},
		{"another method", http.MethodPut, "/@connections/abc", true, http.StatusForbidden},
		{"a signed post", http.MethodPost, "/@connections/abc", true, http.StatusOK},
	}
	for _, tt := range tests {
		header := http.Header{}
		if tt.signed {
			header.Set("Authorization", awstest.SigV4)
		}
		if resp := awstest.Do(t, tt.method, endpoint+tt.path, "x", header); resp.StatusCode != tt.want {
			t.Errorf("%s: %s %s answered %d, want %d", tt.name, tt.method, tt.path, resp.StatusCode, tt.want)
		}
	}
}

func TestWaitSeesEachNewPost(t *testing.T) {
	rec := &fakeconnections.Recorder{}
	done := make(chan error, 1)
	go func() {
		done <- rec.Wait(t.Context(), "c", func(ps []fakeconnections.Post) bool { return len(ps) == 3 })
	}()
	for i := range 3 {
		if err := rec.Post(context.Background(), "c", []byte{byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
		_ = rec.Post(context.Background(), "other", []byte("x"))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
