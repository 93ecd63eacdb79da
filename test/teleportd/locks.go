package teleportd

import (
	"context"
	"sync"
	"time"

	"github.com/gravitational/teleport/api/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// LockCall is one AuthService/UpsertLock call (client.UpsertLock sends the
// *types.LockV2 itself).
type LockCall struct {
	Time    time.Time  // when the call was received
	Name    string     // lock name
	Target  string     // target user (Spec.Target.User)
	Message string     // Spec.Message
	Expires time.Time  // Spec.Expires; zero = never
	Caller  string     // client certificate CN
	Code    codes.Code // the answer: codes.OK = lock placed
	Lock    *types.LockV2
}

type lockState struct {
	mu    sync.Mutex
	calls []LockCall
	err   codes.Code
}

// Locks returns every UpsertLock call received, failed ones included (see
// LockCall.Code), in order.
func (s *Server) Locks() []LockCall {
	s.locks.mu.Lock()
	defer s.locks.mu.Unlock()
	return append([]LockCall(nil), s.locks.calls...)
}

// SetLockError makes UpsertLock fail with code (codes.OK: succeed again).
// codes.PermissionDenied carries Teleport's message: access denied to
// perform action "create" on "lock".
func (s *Server) SetLockError(code codes.Code) {
	s.locks.mu.Lock()
	defer s.locks.mu.Unlock()
	s.locks.err = code
}

// UpsertLock validates the lock like Teleport (name, at least one target:
// codes.InvalidArgument), then checks the caller's UpsertLocks right and
// SetLockError, and records the call.
func (a *authService) UpsertLock(ctx context.Context, lock *types.LockV2) (*emptypb.Empty, error) {
	s := a.s
	c := LockCall{Time: time.Now(), Caller: callerUser(ctx)}
	var err error
	if lock == nil {
		lock = &types.LockV2{}
	}
	cp := *lock
	c.Lock = &cp
	c.Name = lock.GetName()
	c.Target = lock.Spec.Target.User
	c.Message = lock.Spec.Message
	if lock.Spec.Expires != nil {
		c.Expires = *lock.Spec.Expires
	}
	chk := *lock
	if e := chk.CheckAndSetDefaults(); e != nil {
		err = status.Error(codes.InvalidArgument, e.Error())
	} else if e := s.checkAccess(ctx, rightUpsertLocks); e != nil {
		err = e
	}
	s.locks.mu.Lock()
	if err == nil && s.locks.err != codes.OK {
		if s.locks.err == codes.PermissionDenied {
			err = status.Error(codes.PermissionDenied, `access denied to perform action "create" on "lock"`)
		} else {
			err = status.Errorf(s.locks.err, "upserting lock %q failed (injected %s)", c.Name, s.locks.err)
		}
	}
	c.Code = status.Code(err)
	s.locks.calls = append(s.locks.calls, c)
	s.locks.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}
