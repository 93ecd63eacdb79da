package teleportd

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Access is what one user (client certificate CN) may do. Every user has
// FullAccess until SetAccess says otherwise.
type Access struct {
	ListEvents   bool // GetEventExportChunks, ExportUnstructuredEvents, GetUnstructuredEvents (list on event)
	ReadSessions bool // StreamUnstructuredSessionEvents (read on session)
	UpsertLocks  bool // UpsertLock (create on lock)
}

// FullAccess allows everything (the default).
var FullAccess = Access{ListEvents: true, ReadSessions: true, UpsertLocks: true}

// SetAccess sets user's rights. A denied RPC answers codes.PermissionDenied
// with Teleport's message (access denied to perform action "list" on
// "event", "read" on "session", "create" on "lock"), which the client turns
// into trace.AccessDenied.
func (s *Server) SetAccess(user string, a Access) {
	s.acl.mu.Lock()
	defer s.acl.mu.Unlock()
	if s.acl.m == nil {
		s.acl.m = map[string]Access{}
	}
	s.acl.m[user] = a
}

// AccessOf returns user's rights.
func (s *Server) AccessOf(user string) Access {
	s.acl.mu.Lock()
	defer s.acl.mu.Unlock()
	if a, ok := s.acl.m[user]; ok {
		return a
	}
	return FullAccess
}

type accessState struct {
	mu sync.Mutex
	m  map[string]Access
}

type right uint8

const (
	rightListEvents right = iota
	rightReadSessions
	rightUpsertLocks
)

// checkAccess answers codes.PermissionDenied when the caller lacks r.
func (s *Server) checkAccess(ctx context.Context, r right) error {
	a := s.AccessOf(callerUser(ctx))
	var verb, kind string
	switch {
	case r == rightListEvents && !a.ListEvents:
		verb, kind = "list", "event"
	case r == rightReadSessions && !a.ReadSessions:
		verb, kind = "read", "session"
	case r == rightUpsertLocks && !a.UpsertLocks:
		verb, kind = "create", "lock"
	default:
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "access denied to perform action %q on %q", verb, kind)
}

// callerUser is the client certificate's CN ("" if none).
func callerUser(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			return ti.State.PeerCertificates[0].Subject.CommonName
		}
	}
	return ""
}
