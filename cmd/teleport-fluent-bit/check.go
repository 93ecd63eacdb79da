package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/gravitational/teleport/api/client"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/teleport"
)

const checkSynopsis = `check [--config FILE] [-p key=value ...] [--timeout 15s]

Loads the configuration exactly as the plugin does (properties from -p and
--config, FDFWD_* variables, the TOML file), checks storage_dir, loads the
credentials, connects to Teleport, and proves the role can list audit events
(search and bulk export), read session recordings and, with lock_enabled,
create locks. One line per check; the exit status is 1 when anything is wrong.`

// checker prints one line per check and counts the problems.
type checker struct {
	w        io.Writer
	problems int
}

func (c *checker) ok(format string, args ...any)   { c.line("ok", format, args...) }
func (c *checker) note(format string, args ...any) { c.line("note", format, args...) }
func (c *checker) warn(format string, args ...any) { c.line("warning", format, args...) }
func (c *checker) fail(format string, args ...any) {
	c.problems++
	c.line("error", format, args...)
}

func (c *checker) line(level, format string, args ...any) {
	msg := logging.OneLine(fmt.Sprintf(format, args...))
	fmt.Fprintf(c.w, "%-8s %s\n", level+":", msg)
}

func checkCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", checkSynopsis, stderr)
	var cf configFlags
	cf.register(fs)
	timeout := fs.Duration("timeout", 15*time.Second, "how long to wait for Teleport, per call")
	pos, err := parseAll(fs, args)
	if err != nil {
		return flagErr(err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("check: unexpected argument %q", pos[0])
	}
	c := &checker{w: stdout}
	runCheck(c, &cf, *timeout, time.Now)
	if c.problems > 0 {
		return fmt.Errorf("check: %d problem(s) found", c.problems)
	}
	return nil
}

func runCheck(c *checker, cf *configFlags, timeout time.Duration, now func() time.Time) {
	cfg, notices, err := cf.load(os.Getenv)
	if err != nil {
		c.fail("%v", err)
		return
	}
	src := "properties and environment"
	if cfg.ConfigFile != "" {
		src = "config file " + cfg.ConfigFile
	}
	c.ok("configuration loaded from %s: teleport_addr %s, storage_dir %s", src, cfg.TeleportAddr, cfg.StorageDir)
	for _, n := range notices {
		c.note("%s", n)
	}
	if note, warn := conf.ChunkNote(cfg.CallbackBytes); warn {
		c.warn("%s", note)
	} else if note != "" {
		c.note("%s", note)
	}

	checkStorage(c, cfg)

	creds, err := teleport.LoadCredentials(cfg, now())
	if err != nil {
		c.fail("%v", err)
		return
	}
	what := "identity file " + cfg.Identity
	if cfg.Identity == "" {
		what = fmt.Sprintf("teleport_cert %s, teleport_key %s, teleport_ca %s", cfg.Cert, cfg.Key, cfg.CA)
	}
	if exp := creds.CertExpiry(); !exp.IsZero() {
		switch left := exp.Sub(now()); {
		case left <= 0:
			// Only reached with teleport_refresh_enabled, which tolerates
			// an expired file at start in case tbot is about to renew it.
			c.fail("%s: certificate expired at %s; renew it (tbot or tctl auth sign); not connecting", what, exp.UTC().Format(time.RFC3339))
			return
		case left < time.Hour && !cfg.RefreshEnabled:
			c.warn("%s: certificate expires in %s (at %s); without teleport_refresh_enabled the plugin stops working then", what, left.Round(time.Second), exp.UTC().Format(time.RFC3339))
		default:
			c.ok("credentials: %s, certificate valid until %s", what, exp.UTC().Format(time.RFC3339))
		}
	} else {
		c.ok("credentials: %s", what)
	}

	// A plain TCP connection first: a wrong address or a service that is
	// down fails at once with a clear cause, where the Teleport client
	// would retry every way of connecting until the timeout.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", cfg.TeleportAddr)
	cancel()
	if err != nil {
		c.fail("cannot connect to Teleport at %s: %s", cfg.TeleportAddr, dialCause(err, timeout))
		return
	}
	conn.Close()

	ctx, cancel = context.WithTimeout(context.Background(), timeout)
	clt, err := teleport.Dial(ctx, cfg.TeleportAddr, creds.Credentials)
	cancel()
	if err != nil {
		c.fail("cannot connect to Teleport at %s: %s", cfg.TeleportAddr, clientCause(err, cfg.Debug))
		return
	}
	defer clt.Close()

	ctx, cancel = context.WithTimeout(context.Background(), timeout)
	pong, err := clt.Ping(ctx)
	cancel()
	if err != nil {
		c.fail("cannot ping Teleport at %s: %s", cfg.TeleportAddr, explain(err))
		return
	}
	c.ok("connected to Teleport cluster %q (Teleport %s) at %s", pong.ClusterName, pong.ServerVersion, cfg.TeleportAddr)

	checkEvents(c, clt, timeout, now())
	checkSessions(c, clt, timeout)
	if cfg.LockEnabled {
		checkLocks(c, clt, timeout)
	}
}

// checkStorage finds what would stop the plugin at start in storage_dir: a
// directory open to others, a damaged state, a start_time that differs from
// the stored one.
func checkStorage(c *checker, cfg *conf.Config) {
	fi, err := os.Stat(cfg.StorageDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.ok("storage_dir %s does not exist yet; the plugin creates it (0700) on its first run", cfg.StorageDir)
		return
	case err != nil:
		c.fail("storage_dir %s: %v", cfg.StorageDir, err)
		return
	case !fi.IsDir():
		c.fail("storage_dir %s is not a directory", cfg.StorageDir)
		return
	case fi.Mode().Perm()&0o077 != 0:
		c.fail("storage_dir %s has mode %04o; it must not be accessible to group or others (chmod 700 %s)", cfg.StorageDir, fi.Mode().Perm(), cfg.StorageDir)
		return
	}
	st, err := cursor.Peek(cfg.StorageDir)
	if err != nil {
		c.fail("%v", err)
		return
	}
	if st == nil {
		c.ok("storage_dir %s: no state yet; the first run starts at %s", cfg.StorageDir, startDesc(cfg))
	} else if !cfg.StartTime.IsZero() && !cfg.StartTime.Equal(st.StartTime) {
		c.fail("start_time %s differs from %s fixed on the first run in %s: the plugin would refuse to start; remove start_time, or move the cursor with `teleport-fluent-bit cursor set --storage %s --start-time %s`",
			cfg.StartTime.Format(time.RFC3339Nano), st.StartTime.Format(time.RFC3339Nano), cfg.StorageDir, cfg.StorageDir, cfg.StartTime.Format(time.RFC3339Nano))
	} else {
		c.ok("storage_dir %s: %s", cfg.StorageDir, st.Summary())
	}
	if locked, err := cursor.Locked(cfg.StorageDir); err == nil && locked {
		c.note("storage_dir %s is in use by a running plugin (a second one on it would be refused)", cfg.StorageDir)
	}
}

func startDesc(cfg *conf.Config) string {
	if cfg.StartTime.IsZero() {
		return "the time it starts (no start_time)"
	}
	return "start_time " + cfg.StartTime.Format(time.RFC3339Nano)
}

// checkEvents proves the role can list audit events: one search over the
// last day, and the bulk export chunks of today.
func checkEvents(c *checker, clt *client.Client, timeout time.Duration, now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	evs, _, err := clt.SearchUnstructuredEvents(ctx, now.Add(-24*time.Hour).UTC(), now.UTC(), "default", nil, 1, types.EventOrderDescending, "")
	cancel()
	switch {
	case err == nil && len(evs) == 0:
		c.ok("the role can list audit events (SearchUnstructuredEvents: no event in the last 24h)")
	case err == nil:
		ev := evs[0]
		c.ok("the role can list audit events (SearchUnstructuredEvents: newest of the last 24h is %s at %s)",
			ev.GetType(), ev.GetTime().AsTime().UTC().Format(time.RFC3339))
	case isAccessDenied(err):
		c.fail("the role cannot list audit events (SearchUnstructuredEvents: %s): allow resources ['event', 'session'] with verbs ['list', 'read'] (tctl create -f teleport-fluent-bit-role.yaml)", explain(err))
	default:
		c.fail("SearchUnstructuredEvents failed: %s", explain(err))
	}

	ctx, cancel = context.WithTimeout(context.Background(), timeout)
	defer cancel()
	day := time.Date(now.UTC().Year(), now.UTC().Month(), now.UTC().Day(), 0, 0, 0, 0, time.UTC)
	stream := clt.GetEventExportChunks(ctx, &auditlogpb.GetEventExportChunksRequest{Date: timestamppb.New(day)})
	n := 0
	for stream.Next() {
		n++
	}
	err = stream.Done()
	switch {
	case err == nil:
		c.ok("bulk export available (GetEventExportChunks: %d chunk(s) today)", n)
	case teleport.IsNotImplemented(err):
		c.note("bulk export unavailable (the Auth Service does not implement GetEventExportChunks), search will be used")
	case isAccessDenied(err):
		c.fail("the role cannot list audit events (GetEventExportChunks: %s): allow resources ['event', 'session'] with verbs ['list', 'read']", explain(err))
	default:
		c.fail("GetEventExportChunks failed: %s", explain(err))
	}
}

// checkSessions proves the role can read session recordings by asking for
// one that does not exist: NotFound means the read was allowed.
func checkSessions(c *checker, clt *client.Client, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ch, errc := clt.StreamUnstructuredSessionEvents(ctx, uuid.NewString(), 0)
	var err error
	select {
	case <-ch:
	case err = <-errc:
	case <-ctx.Done():
		err = ctx.Err()
	}
	switch {
	case err == nil || trace.IsNotFound(err) || status.Code(trace.Unwrap(err)) == codes.NotFound:
		c.ok("the role can read session recordings (StreamUnstructuredSessionEvents)")
	case isAccessDenied(err):
		c.fail("the role cannot read session recordings (StreamUnstructuredSessionEvents: %s): allow resources ['event', 'session'] with verbs ['list', 'read']", explain(err))
	case teleport.IsNotImplemented(err):
		c.warn("session recordings not verified: the Auth Service does not implement StreamUnstructuredSessionEvents")
	default:
		c.warn("session recordings not verified: StreamUnstructuredSessionEvents: %s", explain(err))
	}
}

// checkLocks proves, without placing a lock, that the roles of the
// identity allow creating and updating locks: it reads them
// (GetCurrentUserRoles, open to every user) and evaluates their rules.
func checkLocks(c *checker, clt *client.Client, timeout time.Duration) {
	const need = "the role needs resources ['lock'] with verbs ['create', 'update']"
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	roles, err := clt.GetCurrentUserRoles(ctx)
	cancel()
	if err != nil {
		c.warn("lock_enabled: lock rights not verified (no lock is placed to test them; reading the identity's roles failed: %s): %s", explain(err), need)
		return
	}
	verdict, why := lockRights(roles)
	switch verdict {
	case rightsGranted:
		c.ok("lock_enabled: the role can create and update locks (%s)", why)
	case rightsDenied:
		c.fail("lock_enabled: the role cannot place locks: %s; %s", why, need)
	default:
		c.warn("lock_enabled: lock rights not verified: %s; %s", why, need)
	}
}

type rights int

const (
	rightsUnknown rights = iota
	rightsGranted
	rightsDenied
)

// lockRights evaluates the lock create and update verbs over roles like
// Teleport: a matching deny rule wins over any allow rule. Rules with a
// where clause cannot be evaluated here.
func lockRights(roles []types.Role) (rights, string) {
	matches := func(r types.Rule, verb string) bool {
		return (slices.Contains(r.Resources, types.KindLock) || slices.Contains(r.Resources, types.Wildcard)) &&
			(slices.Contains(r.Verbs, verb) || slices.Contains(r.Verbs, types.Wildcard))
	}
	var names []string
	verdict := rightsGranted
	var reasons []string
	for _, verb := range []string{types.VerbCreate, types.VerbUpdate} {
		allowed, conditional := "", ""
		for _, role := range roles {
			for _, r := range role.GetRules(types.Deny) {
				if matches(r, verb) {
					if r.Where != "" {
						conditional = role.GetName()
						continue
					}
					return rightsDenied, fmt.Sprintf("role %s denies lock %s", role.GetName(), verb)
				}
			}
			for _, r := range role.GetRules(types.Allow) {
				if matches(r, verb) {
					if r.Where != "" {
						if conditional == "" {
							conditional = role.GetName()
						}
						continue
					}
					if allowed == "" {
						allowed = role.GetName()
					}
				}
			}
		}
		switch {
		case conditional != "":
			verdict = rightsUnknown
			reasons = append(reasons, fmt.Sprintf("role %s has a rule with a where clause for lock %s", conditional, verb))
		case allowed == "":
			return rightsDenied, fmt.Sprintf("no role of the identity allows lock %s", verb)
		default:
			if !slices.Contains(names, allowed) {
				names = append(names, allowed)
			}
		}
	}
	if verdict != rightsGranted {
		return verdict, strings.Join(reasons, "; ")
	}
	return rightsGranted, "role " + strings.Join(names, ", ")
}

// dialCause says why a TCP connection failed, in words.
func dialCause(err error, timeout time.Duration) string {
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return fmt.Sprintf("the host name does not resolve (%s)", logging.OneLine(dns.Error()))
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: nothing listens there (the address should be the Auth Service, :3025, or the Proxy Service, :443)"
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return fmt.Sprintf("no answer within %s (a firewall, or a wrong address?)", timeout)
	}
	return logging.OneLine(err.Error())
}

// clientCause sums up why the Teleport client could not connect (it tries
// several ways at once and reports them all); with debug, everything.
func clientCause(err error, debug bool) string {
	msg := logging.OneLine(err.Error())
	if debug {
		return msg
	}
	for _, k := range []struct{ needle, say string }{
		{"certificate has expired", "the server refused the client certificate: it has expired (renew the identity)"},
		{"expired certificate", "the server refused the client certificate: it has expired (renew the identity)"},
		{"bad certificate", "the server refused the client certificate (an identity of another cluster, or revoked?)"},
		{"unknown certificate authority", "the server refused the client certificate: issued by a CA it does not know (an identity of another cluster?)"},
		{"certificate signed by unknown authority", "the server's certificate is not signed by the cluster CA of the identity (another cluster, or not a Teleport service?)"},
		{"certificate is valid for", "the server's certificate does not match (not a Teleport Auth or Proxy Service?)"},
		{"first record does not look like a TLS handshake", "the server does not speak TLS (not a Teleport service?)"},
		{"connection refused", "connection refused"},
	} {
		if strings.Contains(msg, k.needle) {
			return k.say + " (run with -p debug=on for the client's full error)"
		}
	}
	if len(msg) > 400 {
		msg = msg[:400] + "... (run with -p debug=on for the client's full error)"
	}
	return msg
}

func isAccessDenied(err error) bool {
	return trace.IsAccessDenied(err) || status.Code(trace.Unwrap(err)) == codes.PermissionDenied ||
		status.Code(trace.Unwrap(err)) == codes.Unauthenticated
}

// explain is err on one line, with deadline errors said plainly.
func explain(err error) string {
	if errors.Is(err, context.DeadlineExceeded) || trace.IsConnectionProblem(err) && strings.Contains(err.Error(), "deadline") {
		return "no answer in time (" + logging.OneLine(err.Error()) + ")"
	}
	return logging.OneLine(err.Error())
}
