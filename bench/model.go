package bench

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/p2/buddy/lambda/dev/fakemodel"
)

// modelServer is the project's stand-in model on its own loopback port,
// for the message path run outside the dev server.
type modelServer struct {
	URL string
	fm  *fakemodel.Server
	srv *http.Server
}

func startModel() (*modelServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m := &modelServer{URL: "http://" + ln.Addr().String(), fm: fakemodel.New(fakemodel.Options{})}
	m.srv = &http.Server{Handler: m.fm, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = m.srv.Serve(ln) }()
	return m, nil
}

// Close ends running streams, then the listener.
func (m *modelServer) Close() {
	m.fm.Close()
	_ = m.srv.Close()
}

// directives asks the stand-in for a reply of tokens at rate tokens/s
// (0: as fast as it can) with its first token ttftMS after the request.
func directives(tokens, rate, ttftMS int) string {
	return fmt.Sprintf("[[tokens=%d]] [[rate=%d]] [[ttft=%d]]", tokens, rate, ttftMS)
}
