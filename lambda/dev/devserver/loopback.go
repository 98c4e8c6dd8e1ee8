package devserver

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// loopbackGuard stands in front of each of the dev server's listeners. Any
// web page open in the developer's browser can send requests to 127.0.0.1:
// a form post or a no-cors fetch to /dev/token, a WebSocket to the API
// (browsers apply no same-origin rule to WebSockets). With DNS rebinding,
// where the attacker's own host name starts resolving to 127.0.0.1, it can
// even read the answers. So the guard answers only requests
//
//   - whose Host is the address this listener serves, which a rebound
//     name never is, and
//   - that carry no Origin (curl, the SDKs, the tests: not a browser page)
//     or the origin of one of the dev server's own listeners (the chat page
//     and its WebSocket).
//
// Everything else gets 403 before any handler runs: no token is minted,
// no function is invoked. An allowed Origin is echoed in
// Access-Control-Allow-Origin; no other origin is ever named, and "*"
// never.
type loopbackGuard struct {
	name    string          // the listener, for the log
	hosts   map[string]bool // lower-case host:port values this listener answers to
	origins map[string]bool // lower-case origins whose pages may call it
	log     *slog.Logger
	next    http.Handler
}

// guard wraps next so that it answers only requests addressed to one of
// hosts, from no browser page or from one of origins.
func guard(name string, hosts, origins []string, log *slog.Logger, next http.Handler) *loopbackGuard {
	g := &loopbackGuard{name: name, hosts: map[string]bool{}, origins: map[string]bool{}, log: log, next: next}
	for _, h := range hosts {
		g.hosts[strings.ToLower(h)] = true
	}
	for _, o := range origins {
		g.origins[strings.ToLower(o)] = true
	}
	return g
}

func (g *loopbackGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The answer depends on Origin: a cache must not hand one origin's
	// answer to another.
	w.Header().Add("Vary", "Origin")
	if !g.hosts[strings.ToLower(r.Host)] {
		g.refuse(w, r, "Host", r.Host)
		return
	}
	// A browser sends one Origin; several are as foreign as a wrong one.
	origins := r.Header.Values("Origin")
	if len(origins) > 1 {
		g.refuse(w, r, "Origin", strings.Join(origins, ", "))
		return
	}
	if len(origins) == 1 {
		o := origins[0]
		if !g.origins[strings.ToLower(o)] {
			g.refuse(w, r, "Origin", o)
			return
		}
		// Only one of the server's own origins reaches here: the page
		// opened as localhost calling 127.0.0.1, say.
		w.Header().Set("Access-Control-Allow-Origin", o)
	}
	g.next.ServeHTTP(w, r)
}

// refuse answers 403 in API Gateway's error shape, saying what to use, and
// logs it: a developer who typed another host name learns why.
func (g *loopbackGuard) refuse(w http.ResponseWriter, r *http.Request, header, value string) {
	g.log.Warn("refused a request from outside the dev server", "listener", g.name,
		"header", header, "value", value, "method", r.Method, "path", r.URL.Path)
	writeJSON(w, http.StatusForbidden, map[string]string{
		"message": "Forbidden: " + header + " " + strconv.Quote(value) + " is not this dev server's; it answers only its own loopback address and its own pages",
	})
}

// ownHosts are the Host values a listener on addr answers to: its address,
// and localhost with its port when the address is a loopback one. A
// rebinding attack needs a name the attacker's DNS answers for, and
// browsers resolve localhost themselves, to loopback, so accepting it opens
// nothing; it spares a developer who types localhost a puzzling 403.
func ownHosts(addr net.Addr) []string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return []string{addr.String()}
	}
	port := strconv.Itoa(tcp.Port)
	hosts := []string{net.JoinHostPort(tcp.IP.String(), port)}
	if tcp.IP.IsLoopback() {
		hosts = append(hosts, net.JoinHostPort("localhost", port))
	}
	return hosts
}

// originsOf are the browser origins of pages served from hosts.
func originsOf(hosts ...[]string) []string {
	var out []string
	for _, hs := range hosts {
		for _, h := range hs {
			out = append(out, "http://"+h)
		}
	}
	return out
}

// isLocalhost reports whether a request came in as localhost:PORT rather
// than by the listener's IP.
func isLocalhost(host string) bool {
	name, _, err := net.SplitHostPort(host)
	return err == nil && strings.EqualFold(name, "localhost")
}

// asLocalhost is rawURL with its host name replaced by localhost, keeping
// the scheme, port and path.
func asLocalhost(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Port() == "" {
		return rawURL
	}
	u.Host = net.JoinHostPort("localhost", u.Port())
	return u.String()
}
