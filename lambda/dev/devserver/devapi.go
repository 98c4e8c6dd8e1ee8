package devserver

import (
	"embed"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"regexp"
	"time"

	"github.com/p2/buddy/lambda/dev/localissuer"
)

// web holds the chat page: plain files, no build step.
//
//go:embed web
var web embed.FS

// TokenTTL is the lifetime of a token from POST /dev/token: a working
// day, so the page does not keep fetching new ones.
const TokenTTL = 12 * time.Hour

// subPattern keeps dev user names to what is safe in logs, keys and URLs.
var subPattern = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// devRoutes serves what only the local run has, beside the HTTP API: the
// chat page, the token endpoint, the JWKS and the page's configuration.
type devRoutes struct {
	issuer *localissuer.Issuer
	info   func(*http.Request) PageConfig
}

// PageConfig is GET /dev/config: what the page needs to talk to this server.
type PageConfig struct {
	WebSocketURL string `json:"webSocketUrl"`
	HTTPURL      string `json:"httpUrl"`
	// StandIn is true when replies come from the offline stand-in.
	StandIn bool   `json:"standIn"`
	Model   string `json:"model"`
}

func (d *devRoutes) register(mux *http.ServeMux) {
	files, _ := fs.Sub(web, "web")
	static := http.FileServerFS(files)
	noCache := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The page changes with the code; a stale copy would talk an
			// old protocol.
			w.Header().Set("Cache-Control", "no-cache")
			h.ServeHTTP(w, r)
		})
	}
	mux.Handle("GET /{$}", noCache(static))
	mux.Handle("GET /app.js", noCache(static))
	mux.Handle("GET /style.css", noCache(static))
	mux.Handle("GET /.well-known/jwks.json", d.issuer.JWKSHandler())
	mux.HandleFunc("GET /dev/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, d.info(r))
	})
	mux.HandleFunc("POST /dev/token", d.token)
	// The preflight of a JSON post; it only ever reaches here from one of
	// the server's own origins (loopbackGuard), which it also names.
	mux.HandleFunc("OPTIONS /dev/token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Headers", corsAllowHeaders)
		w.Header().Set("Access-Control-Allow-Methods", "POST,OPTIONS")
		w.WriteHeader(http.StatusNoContent)
	})
}

// token is POST /dev/token {"sub":"alice"} → {"token","expiresIn"}: a JWT
// the normal verifier accepts, signed by the key in the state folder.
func (d *devRoutes) token(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Sub string `json:"sub"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil || json.Unmarshal(body, &in) != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_request", `the body must be JSON like {"sub":"alice"}`)
		return
	}
	if !subPattern.MatchString(in.Sub) {
		writeAPIError(w, http.StatusBadRequest, "bad_request", "sub must be 1 to 64 letters, digits or . _ @ -")
		return
	}
	tok, err := d.issuer.Sign(in.Sub, TokenTTL)
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "internal", "could not sign a token")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "expiresIn": int(TokenTTL / time.Second)})
}

// writeAPIError answers in the HTTP API's error shape.
func writeAPIError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
