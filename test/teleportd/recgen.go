package teleportd

import (
	"encoding/base64"
	"encoding/binary"
	"math/bits"
	"strconv"
	"time"
)

// Generated session recordings. A recording is produced on demand from a
// small description (genRec): its first event is the session.start and its
// last the session.end of the audit log (the same uid, fields and "ei"), and
// the events between are computed from (content seed, index): a resize at
// index 1, print events (and, for one session in eight, desktop.recording
// events), an occasional resize, and a session.leave just before the end.
// Resuming at index k only replays the cheap running counters of the print
// events before k (ci, offset), never their encoding.

type recKind uint8

const (
	rkStart recKind = iota
	rkEnd
	rkResize
	rkLeave
	rkPrint
	rkDesktop
)

var recKindType = [...]string{
	rkStart:   "session.start",
	rkEnd:     "session.end",
	rkResize:  "resize",
	rkLeave:   "session.leave",
	rkPrint:   "print",
	rkDesktop: "desktop.recording",
}

// Salts of the recording hashes (distinct from gen.go's).
const (
	saltRecKind uint64 = iota + 101
	saltRecBytes
	saltRecUID
	saltRecUID2
	saltRecID
	saltRecSize
	saltRecSeed
	saltRecSID
	saltRecUIDs
)

// sessInfo holds the values the events of one session share.
type sessInfo struct {
	user, login string
	host        *genHost
	remote      string
}

func sessInfoFromHash(h uint64) sessInfo {
	return sessInfo{
		user:   pick(genUsers, h>>8),
		login:  pick(genLogins, h>>16),
		host:   &genHosts[(h>>24)%uint64(len(genHosts))],
		remote: "10.0.0." + strconv.Itoa(int((h>>32)%200)+20) + ":" + strconv.Itoa(int((h>>40)%20000)+40000),
	}
}

// genRec describes a generated recording of n events.
type genRec struct {
	sid     string
	seed    int64 // content seed
	n       int
	cluster string
	desktop bool // print and desktop.recording events mixed
	info    sessInfo
	// first and last are the boundary events (index 0 and n-1), encoded
	// once: the audit log's own session.start and session.end.
	first, last *storedEvent
}

// defaultRecordingLen is the length of the recording of a generated
// session: the "ei" of its session.end + 1, 4 to 63 events.
func defaultRecordingLen(h uint64) int { return int((h>>50)%60) + 4 }

// recordingLen is the number of events of the recording of a generated
// session of this segment (its session.end carries "ei" = recordingLen-1).
func (g *genSegment) recordingLen(h uint64) int {
	if g.recEvents > 0 {
		return max(g.recEvents, 2)
	}
	return defaultRecordingLen(h)
}

func (r *genRec) kindAt(i int) recKind { return r.kindFor(i, hashKey(r.seed, saltRecKind)) }

// printBytes is the size of the data of print event i: keystroke echoes of
// 1-3 bytes, and output of 8-157 bytes. genRecCursor computes it with
// printLen; the tests' reference encoder uses this.
func (r *genRec) printBytes(i int) int { return printLen(hash3(r.seed, saltRecBytes, uint64(i))) }

func (r *genRec) desktopBytes(i int) int {
	return 12 + int(hash3(r.seed, saltRecBytes, uint64(i))>>8%300)
}

// timeAt interpolates between the boundary events, at millisecond precision
// like Teleport (never before the first event).
func (r *genRec) timeAt(i int) int64 {
	t0, t1 := r.first.t, r.last.t
	if i <= 0 || r.n < 2 {
		return t0
	}
	if i >= r.n-1 {
		return t1
	}
	d := t1 - t0
	if d <= 0 {
		return t0
	}
	hi, lo := bits.Mul64(uint64(i), uint64(d))
	q, _ := bits.Div64(hi, lo, uint64(r.n-1))
	t := t0 + int64(q)
	if m := t % int64(time.Millisecond); m > 0 {
		t -= m
	}
	return max(t, t0)
}

// idAt is the EventUnstructured.Id of event i. Events with a uid carry it;
// print and desktop.recording events have none (Teleport never sets one), so
// Teleport's ToUnstructured uses the SHA-256 hex of their JSON: here 64 hex
// digits hashed from (seed, i).
func (r *genRec) idAt(i int, k recKind) string {
	switch k {
	case rkStart:
		return r.first.uid
	case rkEnd:
		return r.last.uid
	case rkPrint, rkDesktop:
		var b [64]byte
		for j := 0; j < 4; j++ {
			x := hash3(r.seed, saltRecID+uint64(j)<<8, uint64(i))
			for k := 0; k < 16; k++ {
				b[j*16+k] = hexdigits[x>>(60-4*k)&0xf]
			}
		}
		return string(b[:])
	}
	return uuidString(hash3(r.seed, saltRecUID, uint64(i)), hash3(r.seed, saltRecUID2, uint64(i)))
}

func (r *genRec) meta(i int) RecordingEventMeta {
	k := r.kindAt(i)
	return RecordingEventMeta{Index: int64(i), Type: recKindType[k], UID: r.idAt(i, k), Time: time.Unix(0, r.timeAt(i)).UTC()}
}

func (r *genRec) size() int { return r.n }

func (r *genRec) iter(start int64) recIter {
	c := &genRecCursor{r: r, k: r.keys()}
	if start >= int64(r.n) {
		c.i = r.n
		return c
	}
	st := int(max(start, 0))
	for j := 1; j < st; j++ {
		if c.kindK(j) == rkPrint {
			c.ci++
			c.off += int64(printLen(mix64(c.k.bytes ^ uint64(j))))
		}
	}
	c.i = st
	return c
}

func (r *genRec) metas() []RecordingEventMeta {
	out := make([]RecordingEventMeta, r.n)
	for i := range out {
		out[i] = r.meta(i)
	}
	return out
}

// genRecCursor streams a generated recording from index i; ci and off are
// the chunk index and byte offset of the next print event.
type genRecCursor struct {
	r   *genRec
	i   int
	ci  int64
	off int64
	k   recKeys
	// The "time" strings: tb[:19] is the RFC 3339 date and time of second
	// sec (when secOK), the fraction and "Z" follow.
	sec   int64
	secOK bool
	tb    [64]byte
}

// recKeys are the per-recording halves of hash3 (hash3(seed, salt, v) =
// mix64(key ^ v)), so that an event costs one mix64 per hash.
type recKeys struct {
	kind, bytes uint64
	id          [4]uint64
}

func hashKey(seed int64, salt uint64) uint64 { return mix64(mix64(uint64(seed)) ^ salt) }

func (r *genRec) keys() recKeys {
	k := recKeys{kind: hashKey(r.seed, saltRecKind), bytes: hashKey(r.seed, saltRecBytes)}
	for j := range k.id {
		k.id[j] = hashKey(r.seed, saltRecID+uint64(j)<<8)
	}
	return k
}

// kindK is kindAt with the cursor's key.
func (c *genRecCursor) kindK(i int) recKind { return c.r.kindFor(i, c.k.kind) }

// kindFor is the kind of event i, key being hashKey(seed, saltRecKind).
func (r *genRec) kindFor(i int, key uint64) recKind {
	switch {
	case i == 0:
		return rkStart
	case i == r.n-1:
		return rkEnd
	case i == 1:
		return rkResize
	case i == r.n-2 && r.n >= 5:
		return rkLeave
	}
	x := mix64(key ^ uint64(i))
	if x%50 == 0 {
		return rkResize
	}
	if r.desktop && x>>8&1 == 1 {
		return rkDesktop
	}
	return rkPrint
}

// printLen is printBytes for the hash x = hash3(seed, saltRecBytes, i).
func printLen(x uint64) int {
	if x%4 == 0 {
		return 1 + int((x>>8)%3)
	}
	return 8 + int((x>>8)%150)
}

// Constant pieces of the print and desktop.recording encodings.
var (
	preBytes, preCI, preEI, preMS, preOffset = numEntryPrefix("bytes"), numEntryPrefix("ci"), numEntryPrefix("ei"), numEntryPrefix("ms"), numEntryPrefix("offset")
	entEventPrint                            = appendStrEntry(nil, "event", "print")
	entEventDesktop                          = appendStrEntry(nil, "event", "desktop.recording")
)

// next appends the encoding of the next event to b: written straight into
// b, entry sizes computed up front, constant pieces precomputed, no
// allocation (nested pbw messages and per-event strings cost several times
// as much). TestGenRecWireMatchesReference holds the bytes to the original
// encoder (and to the typed messages).
func (c *genRecCursor) next(b []byte) ([]byte, bool) {
	r := c.r
	if c.i >= r.n {
		return b, false
	}
	i := c.i
	c.i++
	k := c.kindK(i)
	switch k {
	case rkStart:
		return append(b, r.first.raw...), true
	case rkEnd:
		return append(b, r.last.raw...), true
	case rkResize, rkLeave:
		return c.appendSessEvent(b, i, k), true
	}
	t := r.timeAt(i)
	ts := c.timeString(t)
	ms := (t - r.first.t) / int64(time.Millisecond)
	x := mix64(c.k.bytes ^ uint64(i))
	// EventUnstructured: type = 1, id = 2, time = 3, unstructured = 5,
	// index = 4, in appendEventHeader's order.
	typ := recKindType[k]
	b = append(b, 0x0a, byte(len(typ)))
	b = append(b, typ...)
	b = append(b, 0x12, 64)
	for j := range c.k.id {
		b = appendHex64(b, mix64(c.k.id[j]^uint64(i)))
	}
	b = appendTimestamp(b, t)
	b = append(b, 0x2a, 0, 0) // 2 bytes for the length: fixLen2
	mark := len(b)
	if k == rkPrint {
		n := printLen(x)
		b = appendNumEntry(b, preBytes, int64(n))
		b = appendNumEntry(b, preCI, c.ci)
		b = appendStrEntry(b, "cluster_name", r.cluster)
		p := int(c.off % int64(len(termOutput)))
		b = termB64.appendEntry(b, "data", p, n)
		b = appendNumEntry(b, preEI, int64(i))
		b = append(b, entEventPrint...)
		b = appendNumEntry(b, preMS, ms)
		b = appendNumEntry(b, preOffset, c.off)
		b = appendStrHead(b, "time", len(ts))
		b = append(b, ts...)
		c.ci++
		c.off += int64(n)
	} else {
		n := 12 + int(x>>8%300)
		p := int(x % uint64(len(tdpPool)-400))
		b = appendStrEntry(b, "cluster_name", r.cluster)
		b = appendNumEntry(b, preEI, int64(i))
		b = append(b, entEventDesktop...)
		b = tdpB64.appendEntry(b, "message", p, n)
		b = appendNumEntry(b, preMS, ms)
		b = appendStrHead(b, "time", len(ts))
		b = append(b, ts...)
	}
	b = fixLen2(b, mark)
	b = append(b, 0x20)
	b = binary.AppendUvarint(b, uint64(i))
	return b, true
}

// timeString is fmtTime(t) (RFC 3339 with nanoseconds, UTC) in c.tb, the
// date and time formatted once per second.
func (c *genRecCursor) timeString(t int64) []byte {
	sec, ns := t/1e9, t%1e9
	if ns < 0 {
		sec--
		ns += 1e9
	}
	if !c.secOK || sec != c.sec {
		tt := time.Unix(sec, 0).UTC()
		if y := tt.Year(); y < 0 || y > 9999 {
			c.secOK = false
			return time.Unix(0, t).UTC().AppendFormat(c.tb[:0], time.RFC3339Nano)
		}
		tt.AppendFormat(c.tb[:0], "2006-01-02T15:04:05")
		c.sec, c.secOK = sec, true
	}
	b := c.tb[:19]
	if ns != 0 {
		b = append(b, '.')
		for d := int64(1e8); d > 0 && ns > 0; d /= 10 {
			b = append(b, byte('0'+ns/d))
			ns %= d
		}
	}
	return append(b, 'Z')
}

// appendSessEvent writes resize or session.leave event i.
func (c *genRecCursor) appendSessEvent(b []byte, i int, k recKind) []byte {
	r := c.r
	s := r.info
	t := r.timeAt(i)
	ts := c.timeString(t)
	typ := recKindType[k]
	code := "T2003I"
	var size []byte
	var sizeBuf [16]byte
	if k == rkResize {
		code = "T2002I"
		x := hash3(r.seed, saltRecSize, uint64(i))
		size = strconv.AppendInt(sizeBuf[:0], int64(80+int(x%120)), 10)
		size = append(size, ':')
		size = strconv.AppendInt(size, int64(24+int(x>>8%40)), 10)
	}
	uhi, ulo := hash3(r.seed, saltRecUID, uint64(i)), hash3(r.seed, saltRecUID2, uint64(i))
	b = append(b, 0x0a, byte(len(typ)))
	b = append(b, typ...)
	b = append(b, 0x12, 36)
	b = appendUUID(b, uhi, ulo)
	b = appendTimestamp(b, t)
	b = append(b, 0x2a, 0, 0)
	mark := len(b)
	b = appendStrEntry(b, "cluster_name", r.cluster)
	b = appendStrEntry(b, "code", code)
	b = appendNumEntry(b, preEI, int64(i))
	b = appendStrEntry(b, "event", typ)
	b = appendStrEntry(b, "login", s.login)
	b = appendStrEntry(b, "namespace", "default")
	b = appendStrEntry(b, "server_addr", s.host.addr)
	b = appendStrEntry(b, "server_hostname", s.host.hostname)
	b = appendStrEntry(b, "server_id", s.host.id)
	if k == rkLeave {
		b = appendObjHead(b, "server_labels", strEntryLen("env", len(s.host.env))+strEntryLen("region", len("eu-west-1")))
		b = appendStrEntry(b, "env", s.host.env)
		b = appendStrEntry(b, "region", "eu-west-1")
	}
	b = appendStrEntry(b, "sid", r.sid)
	if k == rkResize {
		b = appendStrHead(b, "size", len(size))
		b = append(b, size...)
	}
	b = appendStrHead(b, "time", len(ts))
	b = append(b, ts...)
	b = appendStrHead(b, "uid", 36)
	b = appendUUID(b, uhi, ulo)
	b = appendStrEntry(b, "user", s.user)
	b = fixLen2(b, mark)
	b = append(b, 0x20)
	return binary.AppendUvarint(b, uint64(i))
}

// appendUUID is append(b, uuidString(hi, lo)...).
func appendUUID(b []byte, hi, lo uint64) []byte {
	var u [16]byte
	binary.BigEndian.PutUint64(u[:8], hi)
	binary.BigEndian.PutUint64(u[8:], lo)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexdigits[x>>4], hexdigits[x&0x0f])
	}
	return b
}

// appendHex64 appends the 16 hex digits of x (each half's nibbles spread
// into the bytes of a word, then turned into digits all at once).
func appendHex64(b []byte, x uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(b, hex8(uint32(x>>32))), hex8(uint32(x)))
}

func hex8(x uint32) uint64 {
	v := uint64(x)
	v = (v | v<<16) & 0x0000ffff0000ffff
	v = (v | v<<8) & 0x00ff00ff00ff00ff
	v = (v | v<<4) & 0x0f0f0f0f0f0f0f0f
	letters := (v + 0x0606060606060606) >> 4 & 0x0101010101010101
	return v + 0x3030303030303030 + letters*('a'-'0'-10)
}

// b64Pool holds the base64 of a byte pool from each of the 3 alignments, so
// that the base64 of any slice of the pool is mostly a copy.
type b64Pool struct {
	raw []byte
	enc [3][]byte
}

func newB64Pool(raw []byte) *b64Pool {
	p := &b64Pool{raw: raw}
	for a := range p.enc {
		p.enc[a] = base64.StdEncoding.AppendEncode(nil, raw[a:])
	}
	return p
}

// appendEntry writes a Struct entry k: string_value = base64(raw[p:p+n]),
// as encoding/json and structpb.NewValue encode []byte.
func (bp *b64Pool) appendEntry(b []byte, k string, p, n int) []byte {
	b = appendStrHead(b, k, base64.StdEncoding.EncodedLen(n))
	a, full := p%3, n/3
	g := (p - a) / 3 * 4
	b = append(b, bp.enc[a][g:g+4*full]...)
	return base64.StdEncoding.AppendEncode(b, bp.raw[p+3*full:p+n])
}

// termOutput is what print events carry: an interactive shell session.
const termOutput = "\x1b]0;ubuntu@node-1: ~\x07\x1b[01;32mubuntu@node-1\x1b[00m:\x1b[01;34m~\x1b[00m$ " +
	"ls -la\r\ntotal 48\r\ndrwxr-xr-x 6 ubuntu ubuntu 4096 Nov 20 10:02 \x1b[0m\x1b[01;34m.\x1b[0m\r\n" +
	"drwxr-xr-x 3 root   root   4096 Oct  2 08:11 \x1b[01;34m..\x1b[0m\r\n" +
	"-rw------- 1 ubuntu ubuntu 2213 Nov 20 09:58 .bash_history\r\n" +
	"-rw-r--r-- 1 ubuntu ubuntu  220 Oct  2 08:11 .bash_logout\r\n" +
	"-rw-r--r-- 1 ubuntu ubuntu 3771 Oct  2 08:11 .bashrc\r\n" +
	"drwx------ 2 ubuntu ubuntu 4096 Oct  2 08:14 \x1b[01;34m.ssh\x1b[0m\r\n" +
	"-rw-r--r-- 1 ubuntu ubuntu 1841 Nov 19 17:40 deploy.yaml\r\n" +
	"\x1b[01;32mubuntu@node-1\x1b[00m:\x1b[01;34m~\x1b[00m$ sudo systemctl status nginx\r\n" +
	"\x1b[0;1;32m\u25cf\x1b[0m nginx.service - A high performance web server and a reverse proxy server\r\n" +
	"     Loaded: loaded (/lib/systemd/system/nginx.service; enabled; vendor preset: enabled)\r\n" +
	"     Active: \x1b[0;1;32mactive (running)\x1b[0m since Thu 2026-11-19 08:12:44 UTC; 1 day 1h ago\r\n" +
	"   Main PID: 1123 (nginx)\r\n      Tasks: 3 (limit: 4557)\r\n     Memory: 9.8M\r\n" +
	"\x1b[01;32mubuntu@node-1\x1b[00m:\x1b[01;34m~\x1b[00m$ tail -n 3 /var/log/nginx/access.log\r\n" +
	"10.0.0.31 - - [20/Nov/2026:10:01:12 +0000] \"GET /healthz HTTP/1.1\" 200 2 \"-\" \"kube-probe/1.29\"\r\n" +
	"10.0.0.31 - - [20/Nov/2026:10:01:22 +0000] \"GET /healthz HTTP/1.1\" 200 2 \"-\" \"kube-probe/1.29\"\r\n" +
	"10.0.0.77 - - [20/Nov/2026:10:01:25 +0000] \"POST /api/v1/orders HTTP/1.1\" 201 512 \"-\" \"curl/7.88.1\"\r\n" +
	"\x1b[01;32mubuntu@node-1\x1b[00m:\x1b[01;34m~\x1b[00m$ df -h /\r\n" +
	"Filesystem      Size  Used Avail Use% Mounted on\r\n/dev/root        29G   12G   17G  42% /\r\n" +
	"\x1b[01;32mubuntu@node-1\x1b[00m:\x1b[01;34m~\x1b[00m$ exit\r\nlogout\r\n"

// termPool is termOutput followed by enough of itself that any print event
// (at most 157 bytes) is one slice of it.
var termPool = []byte(termOutput + termOutput[:200])

var termB64, tdpB64 = newB64Pool(termPool), newB64Pool(tdpPool)

// tdpPool holds binary "TDP messages" for desktop.recording events.
var tdpPool = func() []byte {
	b := make([]byte, 8192)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], mix64(uint64(i)+0x7464))
	}
	return b
}()

// --- finding the generated session of a sid -----------------------------------

// The sid of generated session v (= block*2 + sess) of a segment is
// uuidString(hash3(seed, saltSID, v), hash3(seed, saltSID2, v)). mix64 is a
// bijection, so the low word of the sid gives v back for a given seed
// (trying the 4 values of the 2 bits the UUID variant overwrote): a sid is
// found in O(segments) without storing anything.

func unxorshift(y uint64, s uint) uint64 {
	x := y
	for i := uint(0); i < 64; i += s {
		x = y ^ x>>s
	}
	return x
}

func inverseOdd(c uint64) uint64 {
	x := c
	for i := 0; i < 6; i++ {
		x *= 2 - c*x
	}
	return x
}

var (
	invMixC1 = inverseOdd(0xbf58476d1ce4e5b9)
	invMixC2 = inverseOdd(0x94d049bb133111eb)
)

// unmix64 inverts mix64.
func unmix64(y uint64) uint64 {
	x := unxorshift(y, 31)
	x *= invMixC2
	x = unxorshift(x, 27)
	x *= invMixC1
	x = unxorshift(x, 30)
	return x - 0x9e3779b97f4a7c15
}

// parseUUIDWords parses a 36-character UUID into its two 64-bit words.
func parseUUIDWords(s string) (hi, lo uint64, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return 0, 0, false
	}
	var w [2]uint64
	n := 0
	for i := 0; i < 36; i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		c := s[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		default:
			return 0, 0, false
		}
		w[n/16] = w[n/16]<<4 | d
		n++
	}
	return w[0], w[1], true
}

// Block positions of the end and upload of each session of each layout.
var sessionEndPos, sessionUploadPos = func() (end, up [len(layouts)][2]int) {
	for l := range layouts {
		for p, s := range layouts[l] {
			switch s.k {
			case kSessEnd:
				end[l][s.sess] = p
			case kSessUpload:
				up[l][s.sess] = p
			}
		}
	}
	return end, up
}()

// genSessionRecording returns the recording of the generated session sid,
// or nil when no segment generated its session.upload.
func (st *store) genSessionRecording(sid string) *genRec {
	_, lo, ok := parseUUIDWords(sid)
	if !ok {
		return nil
	}
	for _, g := range st.snapshot().segsAsc {
		if r := g.sessionRecording(sid, lo); r != nil {
			return r
		}
	}
	return nil
}

func (g *genSegment) sessionRecording(sid string, lo uint64) *genRec {
	k := mix64(mix64(uint64(g.seed)) ^ saltSID2)
	maxV := uint64((g.count + blockSize - 1) / blockSize * 2)
	for c := uint64(0); c < 4; c++ {
		v := unmix64(lo&(1<<62-1)|c<<62) ^ k
		if v >= maxV {
			continue
		}
		if uuidString(hash3(g.seed, saltSID, v), hash3(g.seed, saltSID2, v)) != sid {
			continue
		}
		block, sess := int(v/2), int(v%2)
		layout := g.layoutOf(block)
		if block*blockSize+sessionUploadPos[layout][sess] >= g.count {
			return nil // the session.upload was not generated
		}
		s := g.session(block, sess, layout)
		endIdx := block*blockSize + sessionEndPos[layout][sess]
		cs := mix64(s.h ^ saltRecSeed)
		return &genRec{
			sid:     sid,
			seed:    int64(cs),
			n:       g.recordingLen(s.h),
			cluster: g.cluster,
			desktop: cs%8 == 0,
			info:    sessInfo{user: s.user, login: s.login, host: s.host, remote: s.remote},
			first:   g.stored(s.startIdx),
			last:    g.stored(endIdx),
		}
	}
	return nil
}

// stored returns generated event i in its encoded form.
func (g *genSegment) stored(i int) *storedEvent {
	w := pbw{b: make([]byte, 0, 1024)} // no regrowing: session events are large
	g.appendEvent(&w, i)
	return &storedEvent{t: g.timeAt(i), uid: g.uidAt(i), typ: g.typeAt(i), raw: w.b}
}
