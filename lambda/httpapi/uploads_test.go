package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/dev/s3local"
	"github.com/p2/buddy/lambda/dev/testfiles"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/httpapi"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/uploads"
)

// uploadAPI is the conversation function's upload routes on DynamoDB
// Local and the S3 emulator, which checks SigV4 and the POST policies
// itself.
type uploadAPI struct {
	t      *testing.T
	rt     *httpapi.Router
	store  *store.Dynamo
	bucket uploads.Bucket
}

func newUploadAPI(t *testing.T, perDay int) *uploadAPI {
	st := store.NewDynamo(dynamodblocal.TestTables(t))
	client, name := s3local.TestBucket(t)
	b := uploads.Bucket{Client: client, Name: name}
	routes := (&httpapi.Uploads{Store: st, Bucket: b, PerDay: perDay,
		Limits: uploads.Limits{ImageBytes: 3_932_160, PDFBytes: 10_485_760, PDFPages: 5}}).Routes()
	for k, v := range (&httpapi.Conversations{Store: st, Objects: b}).Routes() {
		routes[k] = v
	}
	return &uploadAPI{t: t, store: st, bucket: b,
		rt: &httpapi.Router{Function: manifest.ConversationAPI.Name, Log: slog.New(slog.DiscardHandler), Routes: routes}}
}

// call runs a route for user and decodes the answer into out (nil: none).
func (a *uploadAPI) call(user, routeKey, id, body string, out any) (int, string) {
	a.t.Helper()
	var params map[string]string
	if id != "" {
		params = map[string]string{"id": id}
	}
	resp, err := a.rt.Handle(a.t.Context(), request(user, routeKey, params, nil, body))
	if err != nil {
		a.t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal([]byte(resp.Body), out); err != nil {
			a.t.Fatalf("%s: %v: %s", routeKey, err, resp.Body)
		}
	}
	return resp.StatusCode, resp.Body
}

type created struct {
	Upload httpapi.UploadJSON `json:"upload"`
	Post   uploads.Post       `json:"post"`
}

// start declares an upload of user and returns the answer.
func (a *uploadAPI) start(user, name, contentType string, size int) created {
	a.t.Helper()
	var c created
	status, body := a.call(user, manifest.RouteCreateUpload, "", fmt.Sprintf(`{"name":%q,"contentType":%q,"size":%d}`, name, contentType, size), &c)
	if status != http.StatusCreated {
		a.t.Fatalf("POST /uploads: %d %s", status, body)
	}
	return c
}

// send posts body to the upload's presigned POST, as the browser does.
func (a *uploadAPI) send(c created, body []byte) (int, string) {
	a.t.Helper()
	status, code, err := s3local.PostObject(a.t.Context(), c.Post.URL, c.Post.Fields, body)
	if err != nil {
		a.t.Fatal(err)
	}
	return status, code
}

// ready uploads file as a ready upload of user.
func (a *uploadAPI) ready(user, name, contentType string, file []byte) httpapi.UploadJSON {
	a.t.Helper()
	c := a.start(user, name, contentType, len(file))
	if status, code := a.send(c, file); status >= 300 {
		a.t.Fatalf("upload: %d %s", status, code)
	}
	var done struct{ Upload httpapi.UploadJSON }
	if status, body := a.call(user, manifest.RouteCompleteUpload, c.Upload.ID, "", &done); status != http.StatusOK {
		a.t.Fatalf("complete: %d %s", status, body)
	}
	return done.Upload
}

func TestUploadsAreDeclaredThenSentToS3ThenChecked(t *testing.T) {
	a := newUploadAPI(t, 100)
	png := testfiles.Image(uploads.PNG, 30, 20)
	c := a.start("alice", "cat.png", uploads.PNG, len(png))
	if c.Upload.Status != store.UploadPending || c.Upload.ExpiresAt == nil || c.Post.Fields["Content-Type"] != uploads.PNG || c.Post.Fields["key"] == "" {
		t.Fatalf("declared %+v", c)
	}
	if status, code := a.send(c, png); status >= 300 {
		t.Fatalf("the exact file was refused: %d %s", status, code)
	}
	var done struct{ Upload httpapi.UploadJSON }
	if status, body := a.call("alice", manifest.RouteCompleteUpload, c.Upload.ID, "", &done); status != http.StatusOK {
		t.Fatalf("complete: %d %s", status, body)
	}
	if u := done.Upload; u.Status != store.UploadReady || u.Width != 30 || u.Height != 20 || u.URL == "" {
		t.Fatalf("completed %+v", u)
	}
	// The GET URL reads the bytes, as a thumbnail would.
	resp, err := http.Get(done.Upload.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != string(png) {
		t.Errorf("GET url: %d, %d bytes", resp.StatusCode, len(got))
	}
	// Completing again answers the same.
	var again struct{ Upload httpapi.UploadJSON }
	if status, _ := a.call("alice", manifest.RouteCompleteUpload, c.Upload.ID, "", &again); status != http.StatusOK || again.Upload.Status != store.UploadReady {
		t.Errorf("completing twice: %d %+v", status, again.Upload)
	}
	// Another user's id is unknown, on every route.
	for _, route := range []string{manifest.RouteGetUpload, manifest.RouteCompleteUpload, manifest.RouteDeleteUpload} {
		if status, _ := a.call("mallory", route, c.Upload.ID, "", nil); status != http.StatusNotFound {
			t.Errorf("%s by another user: %d, want 404", route, status)
		}
	}
	if status, _ := a.call("alice", manifest.RouteDeleteUpload, c.Upload.ID, "", nil); status != http.StatusNoContent {
		t.Errorf("delete: %d", status)
	}
	if status, _ := a.call("alice", manifest.RouteGetUpload, c.Upload.ID, "", nil); status != http.StatusNotFound {
		t.Errorf("GET after delete: %d, want 404", status)
	}
	if _, err := a.bucket.Head(context.Background(), c.Upload.ID); err != uploads.ErrNoObject {
		t.Errorf("the object after delete: %v", err)
	}
}

func TestUploadDeclarationsAreRefused(t *testing.T) {
	a := newUploadAPI(t, 2)
	tests := []struct {
		name, body string
		status     int
		code, want string
	}{
		{"a type not on the list", `{"name":"a.txt","contentType":"text/plain","size":3}`, 400, errcode.BadRequest, "image/jpeg"},
		{"a size of 0", `{"name":"a.png","contentType":"image/png","size":0}`, 413, errcode.TooLarge, "from 1 to"},
		{"an image over its limit", `{"name":"a.png","contentType":"image/png","size":3932161}`, 413, errcode.TooLarge, "3932160"},
		{"a PDF over its limit", `{"name":"a.pdf","contentType":"application/pdf","size":10485761}`, 413, errcode.TooLarge, "10485760"},
		{"a missing size", `{"name":"a.png","contentType":"image/png"}`, 400, errcode.BadRequest, "required"},
		{"an unknown field", `{"name":"a.png","contentType":"image/png","size":3,"key":"x"}`, 400, errcode.BadRequest, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := a.call("alice", manifest.RouteCreateUpload, "", tt.body, nil)
			if status != tt.status || !strings.Contains(body, `"code":"`+tt.code+`"`) || !strings.Contains(body, tt.want) {
				t.Errorf("%d %s, want %d %s saying %q", status, body, tt.status, tt.code, tt.want)
			}
		})
	}
	t.Run("the day's uploads are counted", func(t *testing.T) {
		a.start("bob", "1.png", uploads.PNG, 10)
		a.start("bob", "2.png", uploads.PNG, 10)
		status, body := a.call("bob", manifest.RouteCreateUpload, "", `{"name":"3.png","contentType":"image/png","size":10}`, nil)
		if status != http.StatusTooManyRequests || !strings.Contains(body, errcode.RateLimited) {
			t.Errorf("a third upload on the day: %d %s", status, body)
		}
	})
}

// S3 itself refuses a body that is not what was declared: the emulator
// checks the POST policy, not Buddy.
func TestS3RefusesWhatWasNotDeclared(t *testing.T) {
	a := newUploadAPI(t, 100)
	png := testfiles.Image(uploads.PNG, 10, 10)
	tests := []struct {
		name   string
		edit   func(c *created) []byte
		status int
		code   string
	}{
		{"one byte more", func(*created) []byte { return append(png, 0) }, 400, "EntityTooLarge"},
		{"one byte less", func(*created) []byte { return png[:len(png)-1] }, 400, "EntityTooSmall"},
		{"another type", func(c *created) []byte { c.Post.Fields["Content-Type"] = uploads.JPEG; return png }, 403, "AccessDenied"},
		{"another tag", func(c *created) []byte {
			c.Post.Fields["tagging"] = strings.Replace(c.Post.Fields["tagging"], ">no<", ">yes<", 1)
			return png
		}, 403, "AccessDenied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := a.start("alice", "cat.png", uploads.PNG, len(png))
			body := tt.edit(&c)
			if status, code := a.send(c, body); status != tt.status || code != tt.code {
				t.Fatalf("S3 answered %d %s, want %d %s", status, code, tt.status, tt.code)
			}
			status, msg := a.call("alice", manifest.RouteCompleteUpload, c.Upload.ID, "", nil)
			if status != http.StatusBadRequest || !strings.Contains(msg, "nothing was uploaded") {
				t.Errorf("complete after the refusal: %d %s", status, msg)
			}
		})
	}
}

// What arrived is checked; a refused file is deleted and its upload says
// rejected, with the reason.
func TestCompleteChecksWhatArrived(t *testing.T) {
	a := newUploadAPI(t, 100)
	png := testfiles.Image(uploads.PNG, 8, 8)
	tests := []struct {
		name, contentType string
		file              []byte
		want              string // "" for ready
	}{
		{"a JPEG", uploads.JPEG, testfiles.Image(uploads.JPEG, 16, 9), ""},
		{"a GIF", uploads.GIF, testfiles.Image(uploads.GIF, 4, 4), ""},
		{"a WebP", uploads.WebP, testfiles.Image(uploads.WebP, 1, 1), ""},
		{"a PDF", uploads.PDF, testfiles.PDF("1.7", 3, false), ""},
		{"a PNG declared as JPEG", uploads.JPEG, png, "is a image/png, not a image/jpeg"},
		{"a truncated image", uploads.PNG, png[:40], "does not decode"},
		{"a PDF that is not one", uploads.PDF, []byte("%PDX not really a pdf"), "not a application/pdf"},
		{"an encrypted PDF", uploads.PDF, testfiles.PDF("1.4", 1, true), "encrypted"},
		{"a PDF over the page limit", uploads.PDF, testfiles.PDF("1.4", 6, false), "6 pages; at most 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := a.start("alice", "file", tt.contentType, len(tt.file))
			if status, code := a.send(c, tt.file); status >= 300 {
				t.Fatalf("upload: %d %s", status, code)
			}
			var done struct{ Upload httpapi.UploadJSON }
			status, body := a.call("alice", manifest.RouteCompleteUpload, c.Upload.ID, "", &done)
			if tt.want == "" {
				if status != http.StatusOK || done.Upload.Status != store.UploadReady {
					t.Fatalf("complete: %d %s", status, body)
				}
				return
			}
			if status != http.StatusBadRequest || !strings.Contains(body, tt.want) {
				t.Fatalf("complete: %d %s, want 400 saying %q", status, body, tt.want)
			}
			var got struct{ Upload httpapi.UploadJSON }
			a.call("alice", manifest.RouteGetUpload, c.Upload.ID, "", &got)
			if got.Upload.Status != store.UploadRejected || !strings.Contains(got.Upload.Reason, tt.want) || got.Upload.URL != "" {
				t.Errorf("the upload after: %+v", got.Upload)
			}
			if _, err := a.bucket.Head(context.Background(), c.Upload.ID); err != uploads.ErrNoObject {
				t.Errorf("the rejected object is still there: %v", err)
			}
			if status, _ := a.call("alice", manifest.RouteCompleteUpload, c.Upload.ID, "", nil); status != http.StatusBadRequest {
				t.Errorf("completing a rejected upload again: %d", status)
			}
		})
	}
}
