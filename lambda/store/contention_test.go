package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/dev/contention"
	"github.com/p2/buddy/lambda/dev/fakeclock"
	"github.com/p2/buddy/lambda/obs"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/tokens"
)

// DynamoDB cancels writes that meet a transaction on the same item, which
// DynamoDB Local never does: contention.API answers as DynamoDB would. A
// write that keeps meeting others fails with ErrContention having written
// nothing; one that meets others now and then goes through; every
// conflict is counted on the request's summary.
func TestContention(t *testing.T) {
	if dbFailed != nil {
		t.Fatal(dbFailed)
	}
	tests := []struct {
		name string
		// conflict picks the writes that meet a conflict.
		conflict func(contention.Write) bool
		// run does the writes and returns the error they ended with.
		run     func(e *env) error
		want    error
		minSeen int64
	}{
		{
			name:     "an acceptance that keeps meeting others fails and writes nothing",
			conflict: func(w contention.Write) bool { return w.Op == "TransactWriteItems" },
			run: func(e *env) error {
				user := e.user()
				_, err := e.accept(user, "2026-03-01", 10, 100, 2)
				page, lerr := e.s.ListConversations(e.ctx, user, 10, "")
				e.must(lerr)
				if len(page.Items) != 0 || e.today(user, "2026-03-01") != [2]int64{} {
					e.Errorf("a refused acceptance stored %d conversations, day %v", len(page.Items), e.today(user, "2026-03-01"))
				}
				return err
			},
			want:    store.ErrContention,
			minSeen: 2,
		},
		{
			name:     "a single-item write that keeps meeting a transaction fails",
			conflict: contention.Touches(db.Tables.Usage),
			run:      func(e *env) error { return e.s.CountResume(e.ctx, e.user(), 30) },
			want:     store.ErrContention,
			minSeen:  2,
		},
		{
			name:     "writes that meet others now and then go through",
			conflict: contention.Rate(0.3, 7, nil),
			run: func(e *env) error {
				user := e.user()
				for range 10 {
					r, err := e.accept(user, "2026-03-01", 10, 1000, 2)
					if err != nil {
						return err
					}
					if err := e.s.ClaimReply(e.ctx, r); err != nil {
						return err
					}
					msg := e.final(r, "a", tokens.Usage{OutputTokens: 5})
					if err := e.s.FinishReply(e.ctx, store.Finish{Reply: r, Message: msg, Keep: time.Hour}); err != nil {
						return err
					}
				}
				if got := e.today(user, "2026-03-01"); got != [2]int64{50, 0} {
					return errors.New("the day's counter is off")
				}
				return nil
			},
			minSeen: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := contention.Wrap(db.Client, tt.conflict)
			d := store.NewDynamo(api, db.Tables)
			store.NoPause(d)
			clk := fakeclock.New(t0)
			d.Now = clk.Now
			var sum obs.Summary
			e := &env{T: t, s: d, clock: clk, ctx: sum.Context(t.Context())}
			err := tt.run(e)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if api.Injected() < tt.minSeen || sum.Conflicts() != api.Injected() {
				t.Errorf("%d conflicts injected, %d counted; want at least %d, all counted", api.Injected(), sum.Conflicts(), tt.minSeen)
			}
		})
	}
}
