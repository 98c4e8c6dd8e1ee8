package devserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/chromedp/chromedp"

	"github.com/p2/buddy/lambda/dev/testfiles"
	"github.com/p2/buddy/lambda/uploads"
)

// The chat page's attachments in chromium against the dev server: files
// declared with POST /uploads, posted by the page straight to the S3
// emulator with the presigned POST, completed, shown, sent by id, described
// by the stand-in, and shown again in the history.

// shownAttachment is an attachment as the page shows it, in the tray or
// in a message.
type shownAttachment struct {
	Name, State, Info, UploadID, Progress string
	// Alt and Src are the thumbnail's; Width and Height its decoded size
	// (0 until it has loaded).
	Alt, Src      string
	Width, Height int
}

// attachmentsJS reads the attachments (li.att) in the element that the
// expression root names into shownAttachments.
func attachmentsJS(root string) string {
	return `[...(` + root + `).querySelectorAll("li.att")].map((li) => {
		const img = li.querySelector("img.thumb");
		const loaded = !!img && img.complete && img.naturalWidth > 0;
		return {name: li.querySelector(".att-name").textContent, state: li.dataset.state || "",
			info: li.querySelector(".att-info").textContent, uploadId: li.dataset.uploadId || "",
			progress: li.dataset.progress || "", alt: img ? img.alt : "", src: img ? img.src : "",
			width: loaded ? img.naturalWidth : 0, height: loaded ? img.naturalHeight : 0};
	})`
}

// trayJS is the composer's attachments.
var trayJS = attachmentsJS(`document.getElementById("attachments")`)

// shownUserMessage is the newest user message: its text and attachments.
type shownUserMessage struct {
	Text        string
	Attachments []shownAttachment
}

// userMessageJS reads the newest user message, or null when there is none.
var userMessageJS = `(() => {
	const ms = document.querySelectorAll("#messages li.msg.user");
	const m = ms[ms.length - 1];
	return m ? {text: m.querySelector(".text").textContent, attachments: ` + attachmentsJS("m") + `} : null;
})()`

// Wire shapes of the attachments the API returns.
type (
	apiAttachment struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		ContentType string `json:"contentType"`
		Size        int64  `json:"size"`
		Width       int    `json:"width"`
		Height      int    `json:"height"`
		Pages       int    `json:"pages"`
	}
	apiUpload struct {
		apiAttachment
		Status string `json:"status"`
		URL    string `json:"url"`
	}
	attachedMessage struct {
		Role        string          `json:"role"`
		Text        string          `json:"text"`
		Attachments []apiAttachment `json:"attachments"`
	}
	attachedConversation struct {
		Messages []attachedMessage `json:"messages"`
	}
)

// getUpload is GET /uploads/{id} as user: the status and the upload.
func getUpload(t *testing.T, srv *Server, user, id string) (int, apiUpload) {
	t.Helper()
	token, err := srv.Token(user)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Upload apiUpload `json:"upload"`
	}
	st := callAPI(testCtx(t), t, srv, "Bearer "+token, http.MethodGet, "/uploads/"+id, nil, &out)
	return st, out.Upload
}

// objectSize is the size of an upload's object in the S3 emulator, -1 when
// there is none.
func objectSize(t *testing.T, srv *Server, id string) int64 {
	t.Helper()
	out, err := srv.s3.Client().HeadObject(testCtx(t), &s3.HeadObjectInput{Bucket: aws.String(srv.UploadsBucket), Key: aws.String(uploads.Key(id))})
	var missing *types.NotFound
	if errors.As(err, &missing) {
		return -1
	}
	if err != nil {
		t.Fatalf("HEAD %s: %v", uploads.Key(id), err)
	}
	return aws.ToInt64(out.ContentLength)
}

// writeTemp writes b as dir/name and returns its path.
func writeTemp(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// attachWithButton gives the page's file input (behind the Attach button)
// these files, as picking them in the file dialog does.
func attachWithButton(t *testing.T, page context.Context, paths ...string) {
	t.Helper()
	if err := chromedp.Do(page, chromedp.SetUploadFiles(chromedp.ID("file-input"), paths)); err != nil {
		t.Fatalf("choosing %v: %v", paths, err)
	}
}

// describeLine is the stand-in's [[describe]] line for an attachment.
func describeLine(b []byte, what string) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%s sha256:%s", what, hex.EncodeToString(sum[:])[:12])
}

func TestChatPageSendsAttachmentsThroughS3AndShowsThemInHistory(t *testing.T) {
	srv := sharedServer(t)
	page := openChatPage(t, srv)
	user := signInOnPage(t, page, "attach")
	png := testfiles.Image("image/png", 40, 30)
	pdf := testfiles.PDF("1.7", 3, false)
	dir := t.TempDir()
	attachWithButton(t, page, writeTemp(t, dir, "photo.png", png), writeTemp(t, dir, "report.pdf", pdf))

	// Each is declared, posted to the emulator, checked; the image shows
	// its thumbnail (its presigned GET), the PDF its pages.
	tray := waitFor[[]shownAttachment](t, page, "both attachments ready, the thumbnail loaded", `(() => {
		const a = `+trayJS+`;
		return a.length === 2 && a.every((x) => x.state === "ready") && a[0].width > 0 ? a : null;
	})()`)
	img, doc := tray[0], tray[1]
	if img.Name != "photo.png" || img.Alt != "photo.png" || img.Width != 40 || img.Height != 30 || !strings.Contains(img.Info, "40×30") {
		t.Errorf("the image shows as %+v, want photo.png's 40×30 thumbnail with its name as alt text", img)
	}
	if !strings.HasPrefix(img.Src, srv.S3Endpoint+"/") {
		t.Errorf("the thumbnail comes from %q, not from the S3 emulator at %s", img.Src, srv.S3Endpoint)
	}
	if doc.Name != "report.pdf" || doc.Src != "" || !strings.Contains(doc.Info, "3 pages") {
		t.Errorf("the PDF shows as %+v, want a chip with its name and 3 pages", doc)
	}
	for _, c := range []struct {
		shown shownAttachment
		body  []byte
	}{{img, png}, {doc, pdf}} {
		if c.shown.Progress != "100" {
			t.Errorf("%s: the upload's progress ended at %q%%", c.shown.Name, c.shown.Progress)
		}
		// The bytes went through the emulator, whole.
		if st, up := getUpload(t, srv, user, c.shown.UploadID); st != http.StatusOK || up.Status != "ready" || up.Name != c.shown.Name {
			t.Errorf("GET /uploads/%s: %d %+v, want %s ready", c.shown.UploadID, st, up, c.shown.Name)
		}
		if n := objectSize(t, srv, c.shown.UploadID); n != int64(len(c.body)) {
			t.Errorf("%s: the emulator holds %d bytes, want %d", c.shown.Name, n, len(c.body))
		}
	}

	// Sent with the text, the stand-in describes both, in order.
	sendOnPage(t, page, "[[describe]]")
	reply := finishedReply(t, page)
	want := describeLine(png, "image image/png 40x30") + "\n" + describeLine(pdf, "document application/pdf 3 pages")
	if reply.State != "done" || reply.Text != want {
		t.Errorf("the reply shows %+v, want the text %q", reply, want)
	}
	if n := evalValue[int](t, page, trayJS+`.length`); n != 0 || !evalValue[bool](t, page, `document.getElementById("attachments").hidden`) {
		t.Errorf("after sending, the tray still holds %d attachments or shows", n)
	}

	// The message shows what it carries, as stored.
	checkShown := func(when string, m shownUserMessage) {
		t.Helper()
		if m.Text != "[[describe]]" || len(m.Attachments) != 2 {
			t.Fatalf("%s, the user message shows %+v", when, m)
		}
		a, d := m.Attachments[0], m.Attachments[1]
		if a.UploadID != img.UploadID || a.Alt != "photo.png" || a.Width != 40 || a.Height != 30 || !strings.HasPrefix(a.Src, srv.S3Endpoint+"/") {
			t.Errorf("%s, the message's image shows as %+v", when, a)
		}
		if d.UploadID != doc.UploadID || d.Name != "report.pdf" || d.Src != "" || !strings.Contains(d.Info, "3 pages") {
			t.Errorf("%s, the message's PDF shows as %+v", when, d)
		}
	}
	messageJS := `(() => { const m = ` + userMessageJS + `; return m && m.attachments.length === 2 && m.attachments[0].width > 0 ? m : null; })()`
	checkShown("sent", waitFor[shownUserMessage](t, page, "the sent message's attachments", messageJS))
	stored := onlyConversation[attachedConversation](t, srv, user)
	if len(stored.Messages) != 2 || len(stored.Messages[0].Attachments) != 2 ||
		stored.Messages[0].Attachments[0] != (apiAttachment{img.UploadID, "photo.png", "image/png", int64(len(png)), 40, 30, 0}) ||
		stored.Messages[0].Attachments[1] != (apiAttachment{doc.UploadID, "report.pdf", "application/pdf", int64(len(pdf)), 0, 0, 3}) {
		t.Errorf("the store holds %+v", stored.Messages)
	}

	// Reloaded, the conversation's history shows them again: the
	// thumbnail's URL is asked for anew (GET /uploads/{id}) once it shows.
	if err := chromedp.Do(page, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitFor[bool](t, page, "the socket to open again", `document.getElementById("status").textContent.startsWith("Connected as ")`)
	waitFor[bool](t, page, "the conversation list", `document.querySelectorAll("#conversations button").length === 1`)
	evalPage(t, page, `document.querySelector("#conversations button").click()`)
	// Scrolled back to (the list shows its end), the message's thumbnail
	// is fetched.
	waitFor[bool](t, page, "the reloaded conversation", `document.querySelectorAll("#messages li.msg").length === 2`)
	evalPage(t, page, `document.querySelector("#messages li.msg.user").scrollIntoView()`)
	checkShown("reloaded", waitFor[shownUserMessage](t, page, "the reloaded message's attachments", messageJS))
}

func TestChatPageAttachesDroppedAndPastedFiles(t *testing.T) {
	srv := sharedServer(t)
	page := openChatPage(t, srv)
	user := signInOnPage(t, page, "drop")
	webp := testfiles.Image("image/webp", 1, 1)
	png := testfiles.Image("image/png", 20, 10)
	tests := []struct {
		name string
		// how: "drop" on the message box (inside the composer) or "paste"
		// there; plainText adds text to the clipboard, as office apps do
		// beside a picture of it.
		how       string
		plainText bool
		file      string
		mediaType string
		body      []byte
		text      string
		// wantAttached: the file goes to the tray; wantReply: the reply's
		// text (any, when empty).
		wantAttached bool
		wantReply    string
	}{
		{name: "a dropped WebP", how: "drop", file: "dot.webp", mediaType: "image/webp", body: webp,
			text: "[[describe]]", wantAttached: true, wantReply: describeLine(webp, "image image/webp 1x1")},
		{name: "a pasted screenshot, sent without text", how: "paste", file: "image.png", mediaType: "image/png", body: png,
			wantAttached: true},
		{name: "a paste that is text", how: "paste", plainText: true, file: "image.png", mediaType: "image/png", body: png},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evalPage(t, page, `(() => {
				const bytes = Uint8Array.from(atob(`+jsString(base64.StdEncoding.EncodeToString(tt.body))+`), (c) => c.charCodeAt(0));
				const data = new DataTransfer();
				data.items.add(new File([bytes], `+jsString(tt.file)+`, {type: `+jsString(tt.mediaType)+`}));
				if (`+fmt.Sprint(tt.plainText)+`) data.setData("text/plain", "a picture of this text");
				const box = document.getElementById("message");
				if (`+jsString(tt.how)+` === "drop") {
					for (const type of ["dragenter", "dragover", "drop"]) {
						box.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
					}
				} else {
					box.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
				}
			})()`)
			// The handlers attach synchronously: the tray says at once.
			if n := evalValue[int](t, page, trayJS+`.length`); n != map[bool]int{true: 1, false: 0}[tt.wantAttached] {
				t.Fatalf("the tray holds %d attachments, want attached: %v", n, tt.wantAttached)
			}
			if !tt.wantAttached {
				return
			}
			a := waitFor[[]shownAttachment](t, page, "the attachment ready", `(() => { const a = `+trayJS+`; return a.length === 1 && a[0].width > 0 ? a : null; })()`)[0]
			if a.Name != tt.file || a.State != "ready" || a.Alt != tt.file {
				t.Errorf("the tray shows %+v", a)
			}
			if tt.text == "" && evalValue[bool](t, page, `document.getElementById("message").required`) {
				t.Error("with an attachment ready the message box still requires text")
			}
			sendOnPage(t, page, tt.text)
			reply := finishedReply(t, page)
			if reply.State != "done" || (tt.wantReply != "" && reply.Text != tt.wantReply) || reply.Text == "" {
				t.Errorf("the reply shows %+v, want the text %q", reply, tt.wantReply)
			}
			m := waitFor[shownUserMessage](t, page, "the message's thumbnail", `(() => { const m = `+userMessageJS+`; return m && m.attachments.length === 1 && m.attachments[0].width > 0 ? m : null; })()`)
			if m.Text != tt.text || m.Attachments[0].UploadID != a.UploadID {
				t.Errorf("the message shows %+v, want the text %q and upload %s", m, tt.text, a.UploadID)
			}
			stored := onlyConversation[attachedConversation](t, srv, user).Messages
			if len(stored) != 2*(i+1) {
				t.Fatalf("the conversation holds %+v", stored)
			}
			if sent := stored[2*i]; sent.Text != tt.text || len(sent.Attachments) != 1 || sent.Attachments[0].ID != a.UploadID {
				t.Errorf("the store holds %+v, want the text %q and upload %s", sent, tt.text, a.UploadID)
			}
		})
	}
}

func TestChatPageShowsWhyAFileIsRefused(t *testing.T) {
	srv := sharedServer(t)
	page := openChatPage(t, srv)
	user := signInOnPage(t, page, "refused")
	dir := t.TempDir()
	// Over MAX_IMAGE_BYTES (3932160): a PNG's header and zeros.
	huge := append(testfiles.PNGHeader(100, 100), make([]byte, 4<<20)...)
	tests := []struct {
		name, file string
		body       []byte
		// tamper changes the Content-Type field of the presigned POST the
		// page receives, so that the S3 emulator refuses the form.
		tamper bool
		// wantReason is in the words shown; wantStatus is the upload's on
		// the server ("": never declared).
		wantReason, wantStatus string
	}{
		{name: "a type not accepted", file: "notes.txt", body: []byte("plain text\n"),
			wantReason: `contentType "text/plain" is not accepted; use one of image/jpeg, image/png, image/gif, image/webp, application/pdf`},
		{name: "an image over the limit", file: "huge.png", body: huge,
			wantReason: "size must be from 1 to 3932160 bytes for image/png"},
		{name: "an encrypted PDF, rejected at completion", file: "locked.pdf", body: testfiles.PDF("1.4", 1, true),
			wantReason: "upload rejected: the PDF is encrypted", wantStatus: "rejected"},
		{name: "a PNG named .jpg, rejected at completion", file: "photo.jpg", body: testfiles.Image("image/png", 8, 8),
			wantReason: "the file is a image/png, not a image/jpeg as declared", wantStatus: "rejected"},
		{name: "a form the storage refuses", file: "fine.png", body: testfiles.Image("image/png", 8, 8), tamper: true,
			wantReason: "the storage refused the file", wantStatus: "pending"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.tamper {
				evalPage(t, page, `(() => {
					const real = window.fetch;
					window.fetch = async (input, init) => {
						const res = await real(input, init);
						if (!(init && init.method === "POST" && String(input).endsWith("/uploads"))) return res;
						window.fetch = real;
						const body = await res.json();
						body.post.fields["Content-Type"] = "image/gif";
						return new Response(JSON.stringify(body), {status: res.status, headers: {"Content-Type": "application/json"}});
					};
				})()`)
			}
			attachWithButton(t, page, writeTemp(t, dir, tt.file, tt.body))
			a := waitFor[[]shownAttachment](t, page, "the refusal", `(() => { const a = `+trayJS+`; return a.length === 1 && a[0].state === "failed" ? a : null; })()`)[0]
			if a.Name != tt.file || !strings.HasPrefix(a.Info, "Not attached: ") || !strings.Contains(a.Info, tt.wantReason) {
				t.Errorf("the tray shows %+v, want the reason %q", a, tt.wantReason)
			}
			if evalValue[int](t, page, `document.querySelectorAll("#attachments [role=alert]").length`) != 1 {
				t.Error("the reason is not an alert")
			}
			if tt.wantStatus == "" && a.UploadID != "" {
				t.Errorf("a file refused at its declaration has upload %s", a.UploadID)
			}
			if tt.wantStatus != "" {
				if st, up := getUpload(t, srv, user, a.UploadID); st != http.StatusOK || up.Status != tt.wantStatus || up.URL != "" {
					t.Errorf("GET /uploads/%s: %d %+v, want status %s", a.UploadID, st, up, tt.wantStatus)
				}
				if n := objectSize(t, srv, a.UploadID); n != -1 {
					t.Errorf("the emulator keeps %d bytes of the refused upload", n)
				}
			}
			// Nothing refused is sent: with no text, Send does nothing.
			evalPage(t, page, `document.getElementById("send").click()`)
			if n := evalValue[int](t, page, `document.querySelectorAll("#messages li.msg").length`); n != 0 {
				t.Errorf("Send with only a refused file shows %d messages", n)
			}

			// Dismissed, it leaves the tray and the server.
			evalPage(t, page, `document.querySelector("#attachments .att-remove").click()`)
			if n := evalValue[int](t, page, trayJS+`.length`); n != 0 {
				t.Errorf("after dismissing, the tray holds %d attachments", n)
			}
			if a.UploadID != "" {
				eventually(testCtx(t), t, func() string {
					if st, up := getUpload(t, srv, user, a.UploadID); st != http.StatusNotFound {
						return fmt.Sprintf("GET /uploads/%s after dismissing it: %d %+v", a.UploadID, st, up)
					}
					return ""
				})
			}
		})
	}
}

func TestChatPageRemovesAnAttachmentNotYetSent(t *testing.T) {
	srv := sharedServer(t)
	page := openChatPage(t, srv)
	user := signInOnPage(t, page, "remove")
	png := testfiles.Image("image/png", 16, 16)
	attachWithButton(t, page, writeTemp(t, t.TempDir(), "unwanted.png", png))
	a := waitFor[[]shownAttachment](t, page, "the attachment ready", `(() => { const a = `+trayJS+`; return a.length === 1 && a[0].state === "ready" ? a : null; })()`)[0]
	if n := objectSize(t, srv, a.UploadID); n != int64(len(png)) {
		t.Fatalf("the emulator holds %d bytes, want %d", n, len(png))
	}
	if label := evalValue[string](t, page, `document.querySelector("#attachments .att-remove").getAttribute("aria-label")`); label != "Remove unwanted.png" {
		t.Errorf("the remove button is labelled %q", label)
	}

	evalPage(t, page, `document.querySelector("#attachments .att-remove").click()`)
	if shown := evalValue[[]bool](t, page, `[!document.getElementById("attachments").hidden, document.activeElement === document.getElementById("attach")]`); shown[0] || !shown[1] {
		t.Errorf("after removing the only attachment: tray shown %v, focus on Attach %v", shown[0], shown[1])
	}
	eventually(testCtx(t), t, func() string {
		if st, up := getUpload(t, srv, user, a.UploadID); st != http.StatusNotFound {
			return fmt.Sprintf("GET /uploads/%s after removing it: %d %+v", a.UploadID, st, up)
		}
		return ""
	})
	if n := objectSize(t, srv, a.UploadID); n != -1 {
		t.Errorf("the emulator keeps %d bytes of the removed upload", n)
	}

	// Held while it is declared: Send waits for it, and removed then, it
	// is deleted once the declaration names its id.
	evalPage(t, page, `(() => {
		const real = window.fetch;
		let release;
		const held = new Promise((r) => { release = r; });
		window.releaseDeclaration = release;
		window.fetch = async (input, init) => {
			const res = await real(input, init);
			if (!(init && init.method === "POST" && String(input).endsWith("/uploads"))) return res;
			window.fetch = real;
			window.declaredId = (await res.clone().json()).upload.id;
			await held;
			return res;
		};
	})()`)
	attachWithButton(t, page, writeTemp(t, t.TempDir(), "held.png", png))
	id := waitFor[string](t, page, "the declaration", `(() => {
		const a = `+trayJS+`;
		return a.length === 1 && a[0].state === "declaring" && window.declaredId;
	})()`)
	evalPage(t, page, `document.getElementById("send").click()`)
	if got := evalValue[[]any](t, page, `[document.getElementById("error").textContent, document.querySelectorAll("#messages li.msg").length]`); got[0] != "Wait until the attachments have uploaded, or remove them." || got[1] != 0.0 {
		t.Errorf("Send while a file uploads shows %q and %v messages", got[0], got[1])
	}
	evalPage(t, page, `document.querySelector("#attachments .att-remove").click(); window.releaseDeclaration();`)
	if n := evalValue[int](t, page, trayJS+`.length`); n != 0 {
		t.Errorf("after removing, the tray holds %d attachments", n)
	}
	eventually(testCtx(t), t, func() string {
		if st, up := getUpload(t, srv, user, id); st != http.StatusNotFound {
			return fmt.Sprintf("GET /uploads/%s after removing it while declared: %d %+v", id, st, up)
		}
		return ""
	})
}
