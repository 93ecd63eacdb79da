package teleportd

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/client"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestUpsertLock(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	clt := identityClient(t, s)
	ctx := context.Background()

	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()
	lock, err := types.NewLock("teleport-fluent-bit-failed-logins-bob-1234", types.LockSpecV2{
		Target:  types.LockTarget{User: "bob"},
		Message: "3 failed logins in 1m0s",
		Expires: &exp,
	})
	require.NoError(t, err)
	before := time.Now()
	require.NoError(t, clt.UpsertLock(ctx, lock))
	perm, err := types.NewLock("perm", types.LockSpecV2{Target: types.LockTarget{User: "carol"}})
	require.NoError(t, err)
	require.NoError(t, clt.UpsertLock(ctx, perm))

	locks := s.Locks()
	require.Len(t, locks, 2)
	l := locks[0]
	assert.Equal(t, "teleport-fluent-bit-failed-logins-bob-1234", l.Name)
	assert.Equal(t, "bob", l.Target)
	assert.Equal(t, "3 failed logins in 1m0s", l.Message)
	assert.True(t, exp.Equal(l.Expires), "%v != %v", exp, l.Expires)
	assert.Equal(t, DefaultUser, l.Caller)
	assert.Equal(t, codes.OK, l.Code)
	assert.False(t, l.Time.Before(before))
	assert.Equal(t, "bob", l.Lock.Spec.Target.User)
	assert.True(t, locks[1].Expires.IsZero(), "no expiry")
	assert.Equal(t, "carol", locks[1].Target)

	s.SetLockError(codes.PermissionDenied)
	err = clt.UpsertLock(ctx, lock)
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	assert.Contains(t, err.Error(), `access denied to perform action "create" on "lock"`)
	s.SetLockError(codes.Unavailable)
	err = clt.UpsertLock(ctx, lock)
	require.True(t, trace.IsConnectionProblem(err), "%v", err)
	s.SetLockError(codes.OK)
	require.NoError(t, clt.UpsertLock(ctx, lock))

	// Validated like Teleport.
	err = clt.UpsertLock(ctx, &types.LockV2{Metadata: types.Metadata{Name: "no-target"}})
	require.True(t, trace.IsBadParameter(err), "%v", err)

	// Per-user right.
	s.SetAccess(DefaultUser, Access{ListEvents: true, ReadSessions: true})
	err = clt.UpsertLock(ctx, lock)
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	assert.Contains(t, err.Error(), `access denied to perform action "create" on "lock"`)

	locks = s.Locks()
	require.Len(t, locks, 7)
	var got []codes.Code
	for _, l := range locks[2:] {
		got = append(got, l.Code)
	}
	assert.Equal(t, []codes.Code{codes.PermissionDenied, codes.Unavailable, codes.OK, codes.InvalidArgument, codes.PermissionDenied}, got)
}

func TestAccessListEvents(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	s.Generate(GenSpec{Start: base, Count: 100, Span: time.Hour, Seed: 1})
	clt := identityClient(t, s)
	path := filepath.Join(t.TempDir(), "identity")
	require.NoError(t, s.WriteIdentityFor(path, "viewer", []string{"viewer"}, time.Hour))
	viewer, err := connect(t, s.Addr(), client.LoadIdentityFile(path), 10*time.Second)
	require.NoError(t, err)

	s.SetAccess("viewer", Access{ReadSessions: true})
	assert.Equal(t, Access{ReadSessions: true}, s.AccessOf("viewer"))
	assert.Equal(t, FullAccess, s.AccessOf(DefaultUser))

	ctx := context.Background()
	_, _, err = viewer.SearchUnstructuredEvents(ctx, base, base.Add(time.Hour), "", nil, 10, types.EventOrderAscending, "")
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	assert.Contains(t, err.Error(), `access denied to perform action "list" on "event"`)

	st := viewer.GetEventExportChunks(ctx, &auditlogpb.GetEventExportChunksRequest{Date: timestamppb.New(base)})
	require.False(t, st.Next())
	err = st.Done()
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	_, err = tryExportChunk(viewer, base, s.Chunks(base)[0], "", -1)
	require.True(t, trace.IsAccessDenied(err), "%v", err)

	// The default user is unaffected; restoring the rights works.
	items, _, err := clt.SearchUnstructuredEvents(ctx, base, base.Add(time.Hour), "", nil, 10, types.EventOrderAscending, "")
	require.NoError(t, err)
	assert.Len(t, items, 10)
	assert.Len(t, listChunks(t, clt, base), 1)
	s.SetAccess("viewer", FullAccess)
	items, _, err = viewer.SearchUnstructuredEvents(ctx, base, base.Add(time.Hour), "", nil, 10, types.EventOrderAscending, "")
	require.NoError(t, err)
	assert.Len(t, items, 10)
}
