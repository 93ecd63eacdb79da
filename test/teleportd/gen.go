package teleportd

import (
	"math/bits"
	"strconv"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Generated events are never stored: event i of a segment is computed on
// demand from (seed, i). Time is Start + i*Span/Count (so generated events are
// time ordered by index), the uid is a UUIDv4-shaped value hashed from
// (seed, i), and the kind of event comes from a fixed set of 16-event block
// layouts (the layout of block i/16 is picked by hashing (seed, block)). Every
// layout holds two SSH sessions whose session.start < session.data <
// session.end < session.upload share a sid, plus logins, certs, roles,
// access requests and locks.

type kind uint8

const (
	kLoginOK kind = iota
	kLoginFail
	kSessStart
	kSessData
	kSessEnd
	kSessUpload
	kRoleCreated
	kRoleDeleted
	kAccessReq
	kCertCreate
	kLockCreated
	kLockDeleted
	numKinds
)

var kindType = [numKinds]string{
	kLoginOK:     "user.login",
	kLoginFail:   "user.login",
	kSessStart:   "session.start",
	kSessData:    "session.data",
	kSessEnd:     "session.end",
	kSessUpload:  "session.upload",
	kRoleCreated: "role.created",
	kRoleDeleted: "role.deleted",
	kAccessReq:   "access_request.create",
	kCertCreate:  "cert.create",
	kLockCreated: "lock.created",
	kLockDeleted: "lock.deleted",
}

var kindCode = [numKinds]string{
	kLoginOK:     "T1000I",
	kLoginFail:   "T1000W",
	kSessStart:   "T2000I",
	kSessData:    "T2006I",
	kSessEnd:     "T2004I",
	kSessUpload:  "T2005I",
	kRoleCreated: "T9000I",
	kRoleDeleted: "T9001I",
	kAccessReq:   "T5000I",
	kCertCreate:  "TC000I",
	kLockCreated: "TLK00I",
	kLockDeleted: "TLK01I",
}

// GeneratedTypes lists the event types Generate produces.
var GeneratedTypes = []string{
	"user.login", "session.start", "session.data", "session.end", "session.upload",
	"role.created", "role.deleted", "access_request.create", "cert.create",
	"lock.created", "lock.deleted",
}

type slot struct {
	k    kind
	sess int8 // session number within the block for session kinds
}

const blockSize = 16

var layouts = [...][blockSize]slot{
	{
		{kLoginOK, 0}, {kCertCreate, 0}, {kSessStart, 0}, {kLoginFail, 0},
		{kSessStart, 1}, {kRoleCreated, 0}, {kSessData, 0}, {kSessEnd, 0},
		{kAccessReq, 0}, {kSessUpload, 0}, {kSessData, 1}, {kSessEnd, 1},
		{kLockCreated, 0}, {kSessUpload, 1}, {kRoleDeleted, 0}, {kLoginOK, 1},
	},
	{
		{kLoginOK, 0}, {kSessStart, 0}, {kLoginOK, 1}, {kSessData, 0},
		{kSessEnd, 0}, {kCertCreate, 0}, {kSessUpload, 0}, {kAccessReq, 0},
		{kLoginFail, 0}, {kLoginFail, 1}, {kSessStart, 1}, {kLockCreated, 0},
		{kSessData, 1}, {kSessEnd, 1}, {kLockDeleted, 0}, {kSessUpload, 1},
	},
	{
		{kCertCreate, 0}, {kLoginOK, 0}, {kSessStart, 0}, {kRoleCreated, 0},
		{kRoleDeleted, 0}, {kSessData, 0}, {kAccessReq, 0}, {kSessEnd, 0},
		{kSessUpload, 0}, {kLoginOK, 1}, {kCertCreate, 1}, {kLoginFail, 0},
		{kSessStart, 1}, {kSessData, 1}, {kSessEnd, 1}, {kSessUpload, 1},
	},
}

// sessionStartPos[layout][sess] is the block position of the session's start.
var sessionStartPos = func() (out [len(layouts)][2]int) {
	for l := range layouts {
		for p, s := range layouts[l] {
			if s.k == kSessStart {
				out[l][s.sess] = p
			}
		}
	}
	return out
}()

// Salts for the per-event hashes.
const (
	saltUID uint64 = iota + 1
	saltUID2
	saltLayout
	saltSID
	saltSID2
	saltPick
	saltObj
	saltObj2
)

func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func hash3(seed int64, salt, v uint64) uint64 {
	return mix64(mix64(mix64(uint64(seed))^salt) ^ v)
}

const hexdigits = "0123456789abcdef"

// uuidString formats two 64-bit words as a version 4 / RFC 4122 variant UUID.
func uuidString(hi, lo uint64) string {
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	j := 0
	for i := 0; i < 16; i++ {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j] = hexdigits[b[i]>>4]
		out[j+1] = hexdigits[b[i]&0x0f]
		j += 2
	}
	return string(out[:])
}

// genSegment is one Generate call: Count events over [Start, Start+Span).
type genSegment struct {
	id         int
	seed       int64
	start      int64  // unix nanos
	span       uint64 // nanos
	count      int
	minT       int64
	maxT       int64
	cluster    string
	chunkSize  int
	prec       int64 // time precision in ns (0/1 = exact)
	recEvents  int   // recording length of its sessions (0 = hashed, see recordingLen)
	noSessions bool  // every block has noSessionLayout
	storedNs   int64 // GenSpec.StoredAt (unix ns; 0 = each at its own time)
}

func (g *genSegment) timeAt(i int) int64 {
	t := g.start
	if g.span != 0 && g.count > 1 {
		hi, lo := bits.Mul64(uint64(i), g.span)
		q, _ := bits.Div64(hi, lo, uint64(g.count))
		t += int64(q)
	}
	if g.prec > 1 {
		r := t % g.prec
		if r < 0 {
			r += g.prec
		}
		t -= r
	}
	return t
}

// firstAtOrAfter returns the first index whose time is >= t (count if none).
func (g *genSegment) firstAtOrAfter(t int64) int {
	lo, hi := 0, g.count
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if g.timeAt(m) < t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// firstAfter returns the first index whose time is > t (count if none).
func (g *genSegment) firstAfter(t int64) int {
	lo, hi := 0, g.count
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if g.timeAt(m) <= t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (g *genSegment) uidAt(i int) string {
	return uuidString(hash3(g.seed, saltUID, uint64(i)), hash3(g.seed, saltUID2, uint64(i)))
}

func (g *genSegment) layoutOf(block int) int {
	return int(hash3(g.seed, saltLayout, uint64(block)) % uint64(len(layouts)))
}

// noSessionLayout is the block of Options.NoSessions: the kinds of the
// first layout with its session events replaced.
var noSessionLayout = [blockSize]slot{
	{kLoginOK, 0}, {kCertCreate, 0}, {kLoginOK, 1}, {kLoginFail, 0},
	{kCertCreate, 1}, {kRoleCreated, 0}, {kLoginOK, 2}, {kAccessReq, 1},
	{kAccessReq, 0}, {kLoginOK, 3}, {kCertCreate, 2}, {kLoginFail, 1},
	{kLockCreated, 0}, {kLoginOK, 4}, {kRoleDeleted, 0}, {kLoginOK, 5},
}

func (g *genSegment) slotAt(i int) (slot, int) {
	if g.noSessions {
		return noSessionLayout[i%blockSize], -1
	}
	block := i / blockSize
	l := g.layoutOf(block)
	return layouts[l][i%blockSize], l
}

func (g *genSegment) typeAt(i int) string {
	s, _ := g.slotAt(i)
	return kindType[s.k]
}

func (g *genSegment) meta(i int) EventMeta {
	return EventMeta{Type: g.typeAt(i), UID: g.uidAt(i), Time: time.Unix(0, g.timeAt(i)).UTC()}
}

// --- event bodies -------------------------------------------------------------

func fmtTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

const zeroTime = "0001-01-01T00:00:00Z"

type genHost struct {
	hostname, id, addr string
	env                string
}

var genHosts = func() []genHost {
	envs := []string{"prod", "prod", "staging", "dev"}
	hs := make([]genHost, 4)
	for i := range hs {
		hs[i] = genHost{
			hostname: "node-" + strconv.Itoa(i+1),
			id:       uuidString(hash3(7, saltObj, uint64(i)), hash3(7, saltObj2, uint64(i))),
			addr:     "10.0.1." + strconv.Itoa(11+i) + ":3022",
			env:      envs[i],
		}
	}
	return hs
}()

var (
	genUsers    = []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	genLogins   = []string{"root", "ubuntu", "ec2-user", "admin"}
	genAgents   = []string{"curl/7.88.1", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", "tsh/17.2.0"}
	genRoleSets = [][]string{{"access"}, {"editor"}, {"auditor"}, {"access", "editor"}}
	genReqRoles = [][]string{{"editor"}, {"db-admin"}, {"access", "prod-ssh"}}
	genReasons  = []string{"deploy hotfix", "investigate incident", "quarterly audit"}
)

func pick[T any](xs []T, h uint64) T { return xs[h%uint64(len(xs))] }

// session holds the values shared by the events of one generated session.
type session struct {
	h        uint64
	sid      string
	user     string
	login    string
	host     *genHost
	remote   string
	startIdx int
}

func (g *genSegment) session(block, sess, layout int) session {
	h := hash3(g.seed, saltSID, uint64(block*2+sess))
	s := session{
		h:        h,
		sid:      uuidString(h, hash3(g.seed, saltSID2, uint64(block*2+sess))),
		user:     pick(genUsers, h>>8),
		login:    pick(genLogins, h>>16),
		host:     &genHosts[(h>>24)%uint64(len(genHosts))],
		startIdx: block*blockSize + sessionStartPos[layout][sess],
	}
	s.remote = "10.0.0." + strconv.Itoa(int((h>>32)%200)+20) + ":" + strconv.Itoa(int((h>>40)%20000)+40000)
	return s
}

// body writes the raw fields of generated event i (time t, uid) to out and
// returns its kind and event index ("ei").
func (g *genSegment) body(i int, t int64, uid string, out sink) (kind, int64) {
	sl, layout := g.slotAt(i)
	block := i / blockSize
	k := sl.k
	r := hash3(g.seed, saltPick, uint64(i))
	user := pick(genUsers, r)
	tstr := fmtTime(t)
	var ei int64

	out.str("cluster_name", g.cluster)
	out.str("code", kindCode[k])
	out.str("event", kindType[k])
	out.str("time", tstr)
	out.str("uid", uid)

	switch k {
	case kLoginOK, kLoginFail:
		out.str("addr.remote", "10.0.0."+strconv.Itoa(int((r>>8)%200)+20)+":"+strconv.Itoa(int((r>>16)%20000)+40000))
		out.str("method", "local")
		out.str("user", user)
		out.str("user_agent", pick(genAgents, r>>32))
		if k == kLoginOK {
			out.boolean("success", true)
		} else {
			out.boolean("success", false)
			out.str("error", "invalid username or password")
		}
	case kSessStart, kSessData, kSessEnd, kSessUpload:
		s := g.session(block, int(sl.sess), layout)
		out.str("sid", s.sid)
		switch k {
		case kSessUpload:
			ei = 2147483647
			out.str("url", "file:///var/lib/teleport/log/records/multi/"+s.sid)
		case kSessStart:
			out.str("addr.local", s.host.addr)
			out.str("addr.remote", s.remote)
			out.strList("initial_command", "")
			out.str("login", s.login)
			out.str("namespace", "default")
			out.str("proto", "ssh")
			out.str("server_addr", s.host.addr)
			out.str("server_hostname", s.host.hostname)
			out.str("server_id", s.host.id)
			out.beginObj("server_labels")
			out.str("env", s.host.env)
			out.str("region", "eu-west-1")
			out.endObj()
			out.str("session_recording", "node")
			out.str("size", "80:25")
			out.str("user", s.user)
		case kSessData:
			ei = 2147483646
			out.str("addr.local", s.host.addr)
			out.str("addr.remote", s.remote)
			out.str("login", s.login)
			out.str("namespace", "default")
			out.num("rx", int64((s.h>>44)%50000)+512)
			out.str("server_id", s.host.id)
			out.num("tx", int64((s.h>>20)%80000)+1024)
			out.str("user", s.user)
		case kSessEnd:
			ei = int64(g.recordingLen(s.h)) - 1 // the recording's last index
			out.str("addr.remote", s.remote)
			out.boolean("enhanced_recording", false)
			out.boolean("interactive", true)
			out.str("login", s.login)
			out.str("namespace", "default")
			out.strList("participants", s.user)
			out.str("proto", "ssh")
			out.str("server_addr", s.host.addr)
			out.str("server_hostname", s.host.hostname)
			out.str("server_id", s.host.id)
			out.beginObj("server_labels")
			out.str("env", s.host.env)
			out.str("region", "eu-west-1")
			out.endObj()
			out.str("session_recording", "node")
			out.str("session_start", fmtTime(g.timeAt(s.startIdx)))
			out.str("session_stop", tstr)
			out.str("user", s.user)
		}
	case kRoleCreated, kRoleDeleted:
		out.str("expires", zeroTime)
		out.str("name", "gen-role-"+strconv.FormatUint(hash3(g.seed, saltObj, uint64(block))%100000, 10))
		out.str("user", user)
	case kAccessReq:
		o := hash3(g.seed, saltObj, uint64(i))
		out.str("expires", fmtTime(t+int64(time.Hour)))
		out.str("id", uuidString(o, hash3(g.seed, saltObj2, uint64(i))))
		out.str("reason", pick(genReasons, o>>8))
		out.strList("roles", pick(genReqRoles, o>>16)...)
		out.str("state", "PENDING")
		out.str("user", user)
	case kCertCreate:
		out.str("cert_type", "user")
		out.beginObj("identity")
		out.str("expires", fmtTime(t+int64(12*time.Hour)))
		out.strList("logins", pick(genLogins, r>>8), "-teleport-internal-join")
		out.str("prev_identity_expires", zeroTime)
		out.strList("roles", pick(genRoleSets, r>>16)...)
		out.str("route_to_cluster", g.cluster)
		out.str("teleport_cluster", g.cluster)
		out.str("user", user)
		out.endObj()
	case kLockCreated, kLockDeleted:
		o := hash3(g.seed, saltObj, uint64(block)+1<<40)
		out.str("expires", zeroTime)
		out.str("name", uuidString(o, hash3(g.seed, saltObj2, uint64(block)+1<<40)))
		out.str("user", user)
		if k == kLockCreated {
			out.beginObj("target")
			out.str("user", pick(genUsers, o>>8))
			out.endObj()
			out.str("updated_by", user)
		}
	}
	out.num("ei", ei)
	return k, ei
}

// appendEvent appends the EventUnstructured encoding of event i to w.
func (g *genSegment) appendEvent(w *pbw, i int) {
	t := g.timeAt(i)
	uid := g.uidAt(i)
	sl, _ := g.slotAt(i)
	appendEventHeader(w, kindType[sl.k], uid, t, 0)
	st := w.begin(5)
	_, ei := g.body(i, t, uid, wireSink{w})
	w.end(st)
	if ei != 0 {
		w.varint(4, uint64(ei))
	}
}

// event returns event i as a message (tests, small helpers).
func (g *genSegment) event(i int) *auditlogpb.EventUnstructured {
	t := g.timeAt(i)
	uid := g.uidAt(i)
	ss := newStructSink()
	k, ei := g.body(i, t, uid, ss)
	return &auditlogpb.EventUnstructured{
		Type:         kindType[k],
		Id:           uid,
		Time:         timestamppb.New(time.Unix(0, t)),
		Index:        ei,
		Unstructured: ss.root(),
	}
}
