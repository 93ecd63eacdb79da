package teleportd

import (
	"encoding/base64"
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The reference for genRecCursor.next: the original encoder (nested pbw
// messages through wireSink, the genRec methods' own hashes), written once
// per sink so that it also builds the typed message (structpb) the wire
// bytes must decode to.

type refSink interface {
	sink
	b64(k string, p []byte)
}

type wireRef struct{ wireSink }

func (s wireRef) b64(k string, p []byte) {
	w := s.w
	e := w.begin(1)
	w.str(1, k)
	vm := w.begin(2)
	w.key(3, wtBytes)
	w.b = binary.AppendUvarint(w.b, uint64(base64.StdEncoding.EncodedLen(len(p))))
	w.b = base64.StdEncoding.AppendEncode(w.b, p)
	w.end(vm)
	w.end(e)
}

type typedRef struct{ *structSink }

func (s typedRef) b64(k string, p []byte) { s.str(k, base64.StdEncoding.EncodeToString(p)) }

type refCursor struct {
	r       *genRec
	i       int
	ci, off int64
}

func newRefCursor(r *genRec, start int64) *refCursor {
	c := &refCursor{r: r}
	if start >= int64(r.n) {
		c.i = r.n
		return c
	}
	st := int(max(start, 0))
	for j := 1; j < st; j++ {
		if r.kindAt(j) == rkPrint {
			c.ci++
			c.off += int64(r.printBytes(j))
		}
	}
	c.i = st
	return c
}

func (c *refCursor) fields(out refSink, i int, k recKind, t int64) {
	r := c.r
	ms := (t - r.first.t) / int64(time.Millisecond)
	switch k {
	case rkPrint:
		n := r.printBytes(i)
		out.num("bytes", int64(n))
		out.num("ci", c.ci)
		out.str("cluster_name", r.cluster)
		p := int(c.off % int64(len(termOutput)))
		out.b64("data", termPool[p:p+n])
		out.num("ei", int64(i))
		out.str("event", "print")
		out.num("ms", ms)
		out.num("offset", c.off)
		out.str("time", fmtTime(t))
	case rkDesktop:
		n := r.desktopBytes(i)
		p := int(hash3(r.seed, saltRecBytes, uint64(i)) % uint64(len(tdpPool)-400))
		out.str("cluster_name", r.cluster)
		out.num("ei", int64(i))
		out.str("event", "desktop.recording")
		out.b64("message", tdpPool[p:p+n])
		out.num("ms", ms)
		out.str("time", fmtTime(t))
	case rkResize, rkLeave:
		s := r.info
		out.str("cluster_name", r.cluster)
		if k == rkResize {
			out.str("code", "T2002I")
		} else {
			out.str("code", "T2003I")
		}
		out.num("ei", int64(i))
		out.str("event", recKindType[k])
		out.str("login", s.login)
		out.str("namespace", "default")
		out.str("server_addr", s.host.addr)
		out.str("server_hostname", s.host.hostname)
		out.str("server_id", s.host.id)
		if k == rkLeave {
			out.beginObj("server_labels")
			out.str("env", s.host.env)
			out.str("region", "eu-west-1")
			out.endObj()
		}
		out.str("sid", r.sid)
		if k == rkResize {
			x := hash3(r.seed, saltRecSize, uint64(i))
			out.str("size", strconv.Itoa(80+int(x%120))+":"+strconv.Itoa(24+int(x>>8%40)))
		}
		out.str("time", fmtTime(t))
		out.str("uid", r.idAt(i, k))
		out.str("user", s.user)
	}
}

// next returns the next event's original encoding and its typed form.
func (c *refCursor) next(t *testing.T) ([]byte, *auditlogpb.EventUnstructured, bool) {
	r := c.r
	if c.i >= r.n {
		return nil, nil, false
	}
	i := c.i
	c.i++
	k := r.kindAt(i)
	var raw []byte
	switch k {
	case rkStart:
		raw = r.first.raw
	case rkEnd:
		raw = r.last.raw
	}
	if raw != nil {
		ev := &auditlogpb.EventUnstructured{}
		require.NoError(t, proto.Unmarshal(raw, ev))
		return raw, ev, true
	}
	tns := r.timeAt(i)
	id := r.idAt(i, k)
	var w pbw
	appendEventHeader(&w, recKindType[k], id, tns, 0)
	st := w.begin(5)
	c.fields(wireRef{wireSink{&w}}, i, k, tns)
	w.end(st)
	if i != 0 {
		w.varint(4, uint64(i))
	}
	ss := newStructSink()
	c.fields(typedRef{ss}, i, k, tns)
	ev := &auditlogpb.EventUnstructured{
		Type:         recKindType[k],
		Id:           id,
		Time:         timestamppb.New(time.Unix(0, tns)),
		Index:        int64(i),
		Unstructured: ss.root(),
	}
	if k == rkPrint {
		c.ci++
		c.off += int64(r.printBytes(i))
	}
	return w.b, ev, true
}

// TestGenRecWireMatchesReference: the events genRecCursor writes are the
// original encoder's bytes and decode to the typed messages, for generated
// sessions (desktop ones included), GenerateRecording and AddSession
// recordings of every size, from any start index.
func TestGenRecWireMatchesReference(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	s.Generate(GenSpec{Start: base, Count: 3000, Span: time.Hour, Seed: 5})
	s.Generate(GenSpec{Start: base.Add(-48 * time.Hour), Count: 1000, Span: time.Minute, Seed: 6, Precision: time.Millisecond})
	s.Generate(GenSpec{Start: base.Add(48 * time.Hour), Count: 1000, Span: 1000 * time.Hour, Seed: 7})
	var recs []*genRec
	for _, sid := range uploadedSessions(t, s) {
		recs = append(recs, s.recording(sid).(*genRec))
	}
	for n := 0; n < 12; n++ {
		for seed := int64(0); seed < 8; seed++ {
			sid := "gen-" + strconv.Itoa(n) + "-" + strconv.FormatInt(seed, 10)
			s.GenerateRecording(sid, n, seed)
			recs = append(recs, s.recording(sid).(*genRec))
		}
	}
	for seed := int64(0); seed < 16; seed++ {
		sid := "big-" + strconv.FormatInt(seed, 10)
		s.GenerateRecording(sid, 3000, seed)
		recs = append(recs, s.recording(sid).(*genRec))
		sid = "added-" + strconv.FormatInt(seed, 10)
		s.AddSession(sid, base.Add(time.Duration(seed)*time.Hour+time.Duration(seed)*1234567), seed%2 == 0)
		recs = append(recs, s.recording(sid).(*genRec))
	}
	kinds := map[recKind]int{}
	desktop := 0
	rng := rand.New(rand.NewPCG(1, 2))
	for _, r := range recs {
		if r.desktop {
			desktop++
		}
		starts := []int64{0, -3, int64(r.n), int64(r.n) + 2, int64(r.n) - 1}
		if r.n > 2 {
			starts = append(starts, 1+rng.Int64N(int64(r.n-1)))
		}
		for si, start := range starts {
			ref := newRefCursor(r, start)
			it := r.iter(start)
			for j := 0; ; j++ {
				want, typed, ok := ref.next(t)
				got, ok2 := it.next(nil)
				require.Equal(t, ok, ok2, "%s from %d: event %d", r.sid, start, j)
				if !ok {
					break
				}
				require.Equal(t, want, got, "%s from %d: event %d", r.sid, start, j)
				if si == 0 {
					kinds[r.kindAt(int(typed.GetIndex()))]++
				}
				if si == 0 || j < 3 {
					ev := &auditlogpb.EventUnstructured{}
					require.NoError(t, proto.Unmarshal(got, ev))
					require.True(t, proto.Equal(typed, ev), "%s from %d: event %d:\n%v\n%v", r.sid, start, j, typed, ev)
				}
			}
		}
	}
	for k := range recKindType {
		require.Positive(t, kinds[recKind(k)], recKindType[k])
	}
	require.Positive(t, desktop)
	t.Logf("%d recordings (%d desktop), events by kind %v", len(recs), desktop, kinds)
}

func TestCursorTimeString(t *testing.T) {
	t.Parallel()
	c := &genRecCursor{}
	rng := rand.New(rand.NewPCG(3, 4))
	ts := []int64{0, -1, 1, 999_999_999, 1e9, -1e9, -1e9 - 1, 1<<63 - 1, -1 << 63, base.UnixNano(), base.UnixNano() + 1, base.UnixNano() + 120_000_000, base.UnixNano() + 100}
	for i := 0; i < 100_000; i++ {
		var v int64
		switch i % 4 {
		case 0:
			v = int64(rng.Uint64())
		case 1:
			v = base.UnixNano() + rng.Int64N(int64(48*time.Hour))
		case 2:
			v = base.UnixNano() + rng.Int64N(100_000)*int64(time.Millisecond)
		default:
			v = ts[len(ts)-1] + rng.Int64N(int64(3*time.Second))
		}
		ts = append(ts, v)
	}
	for _, v := range ts {
		require.Equal(t, fmtTime(v), string(c.timeString(v)), "%d", v)
	}
}

func TestB64Pool(t *testing.T) {
	t.Parallel()
	for _, bp := range []*b64Pool{termB64, tdpB64} {
		for p := 0; p < 700; p++ {
			for n := 0; n <= 320 && p+n <= len(bp.raw); n++ {
				want := appendStrHead(nil, "k", base64.StdEncoding.EncodedLen(n))
				want = base64.StdEncoding.AppendEncode(want, bp.raw[p:p+n])
				require.Equal(t, want, bp.appendEntry(nil, "k", p, n), "p %d n %d", p, n)
			}
		}
	}
}

func TestAppendHex64(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 100_000; i++ {
		x := rng.Uint64()
		if i < 256 {
			x = uint64(i) * 0x0101010101010101
		}
		want := strconv.FormatUint(x, 16)
		for len(want) < 16 {
			want = "0" + want
		}
		require.Equal(t, want, string(appendHex64([]byte("p"), x)[1:]))
	}
}

func TestFixLen2(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 127, 128, 300, 16383, 16384, 1 << 21, 3<<20 + 5} {
		content := make([]byte, n)
		for i := range content {
			content[i] = byte(i * 7)
		}
		b := append([]byte{0xaa, 0x2a, 0, 0}, content...)
		b = fixLen2(b, 4)
		var w pbw
		w.b = []byte{0xaa}
		w.bytes(5, content)
		require.Equal(t, w.b, b, "n %d", n)
	}
}
