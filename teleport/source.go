package teleport

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/gravitational/teleport/api/client"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/internalutils/stream"
	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/metrics"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// AuditLog is the part of the Teleport client the sources use; *client.Client
// implements it.
type AuditLog interface {
	GetEventExportChunks(ctx context.Context, req *auditlogpb.GetEventExportChunksRequest) stream.Stream[*auditlogpb.EventExportChunk]
	ExportUnstructuredEvents(ctx context.Context, req *auditlogpb.ExportUnstructuredEventsRequest) stream.Stream[*auditlogpb.ExportEventUnstructured]
	SearchUnstructuredEvents(ctx context.Context, fromUTC, toUTC time.Time, namespace string, eventTypes []string, limit int, order types.EventOrder, startKey string) ([]*auditlogpb.EventUnstructured, string, error)
}

var _ AuditLog = (*client.Client)(nil)

// Sink receives the items a source produces, in order per chunk or window.
type Sink interface {
	// Put blocks while the queue is full; it fails only when ctx ends.
	Put(ctx context.Context, it record.Item) error
}

// ErrNotImplemented is returned by the export source when the server lacks
// the bulk export API (file and DynamoDB backends in some versions).
var ErrNotImplemented = errors.New("the Auth Service does not implement bulk event export")

// IsNotImplemented tells whether err is the server saying it lacks an API.
func IsNotImplemented(err error) bool {
	return trace.IsNotImplemented(err) || status.Code(trace.Unwrap(err)) == codes.Unimplemented
}

// encode turns one Teleport event into a queue item, or a position-only item
// when the filter drops it. A session.upload (or, from older servers,
// session.end) also announces its recording, whatever the audit filters say:
// they choose audit records, not recordings.
func encode(ev *auditlogpb.EventUnstructured, f *Filter, log *logging.Logger) record.Item {
	typ := ev.GetType()
	body := ev.GetUnstructured()
	if typ == "" {
		typ = body.GetFields()["event"].GetStringValue()
	}
	t, ok := record.Time(ev.GetTime().AsTime(), body)
	var it record.Item
	if f.Keep(typ, t) {
		if !ok {
			// Keep the event: a record stamped with the fetch time beats a lost one.
			log.Debugf("event %s (%s) has no usable time; stamping it with the current time", ev.GetId(), typ)
			t = time.Now()
		}
		it = record.Item{Data: record.Append(make([]byte, 0, 512), t, body), Time: t}
	}
	switch typ {
	case sessionUpload, sessionEnd:
		it.Announce = announce(typ, t, body, f)
	case userLogin:
		if f.LoginFailures {
			it.Failure = loginFailure(t, body)
		}
	}
	return it
}

const userLogin = "user.login"

// loginFailure returns the failed login a user.login event records, if it
// does. Locks target Teleport users, so the count is per `user`; `login`
// (the host login of SSH sessions) plays no part.
func loginFailure(t time.Time, body *structpb.Struct) *cursor.LoginFailure {
	fields := body.GetFields()
	ok, isBool := fields["success"].GetKind().(*structpb.Value_BoolValue)
	user := fields["user"].GetStringValue()
	if !isBool || ok.BoolValue || user == "" || t.IsZero() {
		return nil
	}
	return &cursor.LoginFailure{User: user, At: t}
}

const (
	sessionUpload = "session.upload"
	sessionEnd    = "session.end"
)

// announce returns the recording an audit event announces, if any.
func announce(typ string, t time.Time, body *structpb.Struct, f *Filter) *cursor.Announce {
	fields := body.GetFields()
	sid := fields["sid"].GetStringValue()
	if sid == "" || (!t.IsZero() && t.Before(f.start)) {
		return nil
	}
	if typ == sessionEnd && fields["session_recording"].GetStringValue() == "off" {
		return nil
	}
	return &cursor.Announce{SessionID: sid, At: t, ByEnd: typ == sessionEnd}
}

// retry is the backoff between failed calls: quick at first, at most 30 s.
func retry() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 500 * time.Millisecond
	b.MaxInterval = 30 * time.Second
	b.MaxElapsedTime = 0
	return b
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// failures logs the first failure of a streak as a warning and the recovery
// as info, so an Auth Service that is down for an hour costs two log lines,
// not thousands.
type failures struct {
	log  *logging.Logger
	what string
	bo   *backoff.ExponentialBackOff
	n    int
	m    *metrics.Metrics
	kind string
}

func newFailures(log *logging.Logger, what string, m *metrics.Metrics, kind string) *failures {
	return &failures{log: log, what: what, bo: retry(), m: m, kind: kind}
}

// fail records err and sleeps the backoff.
func (f *failures) fail(ctx context.Context, err error) error {
	f.n++
	f.m.Error(f.kind)
	d := f.bo.NextBackOff()
	if f.n == 1 {
		f.log.Warnf("%s failed, retrying with backoff: %s", f.what, logging.OneLine(err.Error()))
	} else {
		f.log.Debugf("%s failed again (%d), next try in %s: %s", f.what, f.n, d.Round(time.Millisecond), logging.OneLine(err.Error()))
	}
	return sleep(ctx, d)
}

func (f *failures) ok() {
	if f.n > 0 {
		f.log.Infof("%s works again after %d failed attempts", f.what, f.n)
	}
	f.n = 0
	f.bo.Reset()
}
