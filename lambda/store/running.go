package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// A user's running replies are a string set in one usage item (liveKey):
// the acceptance adds a reply's entry, conditional on the set's size (the
// in-flight cap), and whatever ends the reply takes it out again, in the
// same transaction that gives back the reply's reservation (settle.go).
// An entry names when it lapses, so a reply whose job died without
// settling (Lambda killed it) is found and given back by the next
// acceptance that needs its room (reclaimLapsed).

// LiveEntry is the entry of a reply in its user's running set: when it
// lapses (a crashed job never gives it back) and the message id.
func LiveEntry(until time.Time, messageID string) string {
	return strconv.FormatInt(until.Unix(), 10) + "/" + messageID
}

// parseLiveEntry splits an entry into its lapse time and message id.
func parseLiveEntry(entry string) (until int64, messageID string, ok bool) {
	epoch, id, ok := strings.Cut(entry, "/")
	n, err := strconv.ParseInt(epoch, 10, 64)
	return n, id, ok && err == nil
}

// runningEntries reads the user's running set, split into the entries
// that still hold and those that lapsed.
func (d *Dynamo) runningEntries(ctx context.Context, userID string) (live, lapsed []string, err error) {
	it, err := d.getOne(ctx, d.tables.Usage, usageKey(userID, liveKey), "read running replies")
	if errors.Is(err, ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	set, _ := it[attrReplies].(*types.AttributeValueMemberSS)
	if set == nil {
		return nil, nil, nil
	}
	now := d.now().Unix()
	for _, e := range set.Value {
		if until, _, ok := parseLiveEntry(e); ok && now >= until {
			lapsed = append(lapsed, e)
		} else {
			live = append(live, e)
		}
	}
	return live, lapsed, nil
}

// reclaimLapsed gives back what the user's lapsed replies took (their jobs
// died without settling): each is failed, its reservation returned to its
// day and its entry removed, exactly once. It reports whether any was.
func (d *Dynamo) reclaimLapsed(ctx context.Context, userID string) (bool, error) {
	_, lapsed, err := d.runningEntries(ctx, userID)
	if err != nil || len(lapsed) == 0 {
		return false, err
	}
	for _, entry := range lapsed {
		_, id, _ := parseLiveEntry(entry)
		r, err := d.GetReply(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			// Deleted with its conversation: the reservation went with the
			// record, and only the entry is left to take out.
			err = d.leaveRunning(ctx, userID, entry)
		case err == nil && r.UserID == wire(userID):
			r.LiveEntry = entry
			err = d.failReply(ctx, r, failLapsed, "internal", "", zeroUsage)
			if errors.Is(err, ErrClaimed) || errors.Is(err, ErrNotFound) {
				err = nil
			}
		case err == nil:
			err = d.leaveRunning(ctx, userID, entry)
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

// leaveRunning takes entries out of the user's running set.
func (d *Dynamo) leaveRunning(ctx context.Context, userID string, entries ...string) error {
	_, err := d.update(ctx, d.tables.Usage, usageKey(userID, liveKey),
		expression.Delete(expression.Name(attrReplies), expression.Value(&types.AttributeValueMemberSS{Value: entries})), noCondition, types.ReturnValueNone)
	if err != nil {
		return wrap("leave running replies", err)
	}
	return nil
}

// Running reports the user's running replies (lapsed entries excluded).
func (d *Dynamo) Running(ctx context.Context, userID string) (int, error) {
	if !findable(userID) {
		return 0, nil
	}
	live, _, err := d.runningEntries(ctx, userID)
	return len(live), err
}

// resumesKey is the usage table's sort key of the user's resume counter:
// the minute it counts and how many resumes it saw.
const resumesKey = "resumes"

const (
	attrMinute = "minute"
	attrCount  = "n"
)

// CountResume counts one resume of the user's in the current minute, or
// answers ErrRateLimited when the minute has seen limit already. One item
// per user, rewritten when a new minute starts: nothing accumulates.
func (d *Dynamo) CountResume(ctx context.Context, userID string, limit int) error {
	if !findable(userID) {
		return ErrNotFound
	}
	minute := d.now().UTC().Format("2006-01-02T15:04")
	key := usageKey(userID, resumesKey)
	sameMinute := expression.Name(attrMinute).Equal(expression.Value(minute))
	// Two rounds: a resume racing another into a new minute finds the
	// minute started by the time it counts again.
	for range 2 {
		_, err := d.update(ctx, d.tables.Usage, key,
			expression.Add(expression.Name(attrCount), expression.Value(1)),
			sameMinute.And(expression.Name(attrCount).LessThan(expression.Value(limit))), types.ReturnValueNone)
		if !conditionFailed(err) {
			return wrapIf("count resume", err)
		}
		_, err = d.update(ctx, d.tables.Usage, key,
			expression.Set(expression.Name(attrMinute), expression.Value(minute)).Set(expression.Name(attrCount), expression.Value(1)),
			expression.AttributeNotExists(expression.Name(attrMinute)).Or(expression.Name(attrMinute).NotEqual(expression.Value(minute))),
			types.ReturnValueNone)
		if !conditionFailed(err) {
			return wrapIf("count resume", err)
		}
	}
	return ErrRateLimited
}

// wrapIf is wrap for an error that may be nil.
func wrapIf(op string, err error) error {
	if err == nil {
		return nil
	}
	return wrap(op, err)
}
