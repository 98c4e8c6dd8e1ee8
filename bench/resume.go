package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/p2/buddy/lambda/dev/wsclient"
	"github.com/p2/buddy/lambda/wsapi"
)

// ResumeSample is one reconnect and resume.
type ResumeSample struct {
	// FirstMissed runs from the start of the reconnect (the new socket's
	// dial, token in hand) to the arrival of the first frame the client
	// had not seen.
	FirstMissed time.Duration
}

// Resume streams a long reply on a socket, drops the socket after a few
// deltas (no close frame, as a network failure does), reconnects and
// resumes after the last seq the client read, n times, one user each. The
// resumed frames must continue the client's seq with no gap; the reply is
// then stopped, so the run stays short.
func (d *DevServer) Resume(ctx context.Context, n int) ([]ResumeSample, error) {
	out := make([]ResumeSample, 0, n)
	for i := range n {
		s, err := d.resumeOnce(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("resume %d: %w", i, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// Sizes of a resume sample: a reply far longer than the sample (it is
// stopped once resumed), read for a few deltas before the drop.
const (
	resumeReplyTokens = 3000
	resumeReplyRate   = 100
	resumeReadDeltas  = 3
)

func (d *DevServer) resumeOnce(ctx context.Context, i int) (ResumeSample, error) {
	token, err := d.token(ctx, fmt.Sprintf("bench-resume-%d-%d", i, time.Now().UnixNano()))
	if err != nil {
		return ResumeSample{}, err
	}
	a, _, err := wsclient.Dial(ctx, d.srv.WebSocketURL, token)
	if err != nil {
		return ResumeSample{}, err
	}
	defer a.WS.CloseNow()
	req := fmt.Sprintf("resume-%d", i)
	if err := a.SendMessage(ctx, wsclient.SendMessage{RequestID: req, Text: directives(resumeReplyTokens, resumeReplyRate, 0) + " Tell me a long story."}); err != nil {
		return ResumeSample{}, err
	}
	messageID, last := "", -1
	for last < resumeReadDeltas-1 {
		f, err := a.Read(ctx)
		if err != nil {
			return ResumeSample{}, err
		}
		switch {
		case f.Type == wsapi.TypeStart && messageID == "":
			messageID = f.MessageID
		case f.Type == wsapi.TypeDelta && messageID != "" && f.Seq != nil && *f.Seq == last+1:
			last = *f.Seq
		default:
			return ResumeSample{}, fmt.Errorf("unexpected frame before the drop: %s", f.Raw)
		}
	}
	_ = a.WS.CloseNow()

	reconnect := time.Now()
	b, _, err := wsclient.Dial(ctx, d.srv.WebSocketURL, token)
	if err != nil {
		return ResumeSample{}, err
	}
	defer b.WS.CloseNow()
	resumeID := req + "-resume"
	if err := b.Resume(ctx, resumeID, messageID, last); err != nil {
		return ResumeSample{}, err
	}
	first, err := b.Read(ctx)
	if err != nil {
		return ResumeSample{}, err
	}
	if first.Type != wsapi.TypeDelta || first.RequestID != resumeID || first.Seq == nil || *first.Seq != last+1 {
		return ResumeSample{}, fmt.Errorf("the resume after seq %d began with %s, want delta %d", last, first.Raw, last+1)
	}
	sample := ResumeSample{FirstMissed: first.At.Sub(reconnect)}
	if err := b.Stop(ctx, req+"-stop", messageID); err != nil {
		return ResumeSample{}, err
	}
	rest, err := b.CollectResumed(ctx, resumeID, last+1)
	if err != nil {
		return ResumeSample{}, err
	}
	if rest.Err != nil || rest.End.StopReason != wsapi.StopReasonStopped {
		return ResumeSample{}, fmt.Errorf("the stopped reply ended with %+v %+v", rest.End, rest.Err)
	}
	_ = b.Close()
	return sample, nil
}
