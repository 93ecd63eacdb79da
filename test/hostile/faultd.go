package hostile

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	gproto "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Faultd is an Auth Service that sends export events as hand-made wire
// bytes, so that a test can send what no Go Teleport server can: strings
// that are not UTF-8, NaN numbers, repeated map keys, unknown fields. It
// serves Ping and the bulk export API only (no search, no recordings), on
// 127.0.0.1 with mutual TLS, with the CA and server certificate of a
// test/teleportd directory, so identity files written by that teleportd
// work against it.
type Faultd struct {
	gs   *grpc.Server
	addr string

	mu     sync.Mutex
	chunks map[string]map[string][][]byte // day -> chunk -> ExportEventUnstructured frames
	calls  map[string]int                 // ExportUnstructuredEvents calls per chunk
}

// StartFaultd serves with the TLS material teleportd keeps in dir
// (tls-ca.crt, server.crt, server.key).
func StartFaultd(dir string) (*Faultd, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "tls-ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no CA in %s", dir)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &Faultd{addr: lis.Addr().String(), chunks: map[string]map[string][][]byte{}, calls: map[string]int{}}
	f.gs = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12})),
		grpc.ForceServerCodecV2(frameCodec{encoding.GetCodecV2("proto")}),
	)
	proto.RegisterAuthServiceServer(f.gs, &pingOnly{})
	auditlogpb.RegisterAuditLogServiceServer(f.gs, &faultAudit{f: f})
	go f.gs.Serve(lis)
	return f, nil
}

// Addr is host:port.
func (f *Faultd) Addr() string { return f.addr }

// Close stops serving.
func (f *Faultd) Close() { f.gs.Stop() }

// Chunk sets the frames of a chunk of day (UTC). The cursor of frame i must
// be strconv.Itoa(i+1) (see Frame): a request with cursor c resumes at
// frame c.
func (f *Faultd) Chunk(day time.Time, name string, frames ...[]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := day.UTC().Format("2006-01-02")
	if f.chunks[d] == nil {
		f.chunks[d] = map[string][][]byte{}
	}
	f.chunks[d][name] = frames
}

// Calls is the number of ExportUnstructuredEvents calls for a chunk.
func (f *Faultd) Calls(chunk string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[chunk]
}

// Frame encodes frame number i of a chunk: an ExportEventUnstructured with
// cursor i+1 whose event has type typ, id and time t and whose body is
// the fields plus raw, appended as they are to the Struct's encoding (to
// carry what proto.Marshal refuses to write).
func Frame(i int, typ, id string, t time.Time, fields map[string]*structpb.Value, raw []byte) []byte {
	body := &structpb.Struct{Fields: map[string]*structpb.Value{
		"event": structpb.NewStringValue(typ), "uid": structpb.NewStringValue(id),
		"time": structpb.NewStringValue(t.UTC().Format(time.RFC3339Nano)),
	}}
	for k, v := range fields {
		body.Fields[k] = v
	}
	sb, err := gproto.MarshalOptions{Deterministic: true}.Marshal(body)
	if err != nil {
		panic(err)
	}
	sb = append(sb, raw...)
	eb, err := gproto.Marshal(&auditlogpb.EventUnstructured{Type: typ, Id: id, Time: timestamppb.New(t), Index: int64(i)})
	if err != nil {
		panic(err)
	}
	eb = protowire.AppendTag(eb, 5, protowire.BytesType) // unstructured
	eb = protowire.AppendBytes(eb, sb)
	var out []byte
	out = protowire.AppendTag(out, 1, protowire.BytesType) // event
	out = protowire.AppendBytes(out, eb)
	out = protowire.AppendTag(out, 2, protowire.BytesType) // cursor
	return protowire.AppendString(out, strconv.Itoa(i+1))
}

// RawField is the wire encoding of one Struct entry key: value, with the
// key and a string value as raw bytes (not necessarily UTF-8).
func RawField(key, value []byte) []byte {
	var v []byte
	v = protowire.AppendTag(v, 3, protowire.BytesType) // Value.string_value
	v = protowire.AppendBytes(v, value)
	var e []byte
	e = protowire.AppendTag(e, 1, protowire.BytesType) // map entry key
	e = protowire.AppendBytes(e, key)
	e = protowire.AppendTag(e, 2, protowire.BytesType) // map entry value
	e = protowire.AppendBytes(e, v)
	var out []byte
	out = protowire.AppendTag(out, 1, protowire.BytesType) // Struct.fields
	return protowire.AppendBytes(out, e)
}

// frame is a pre-encoded message, sent as is.
type frame []byte

type frameCodec struct{ encoding.CodecV2 }

func (c frameCodec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(frame); ok {
		return mem.BufferSlice{mem.SliceBuffer(f)}, nil
	}
	return c.CodecV2.Marshal(v)
}

type pingOnly struct {
	proto.UnimplementedAuthServiceServer
}

func (*pingOnly) Ping(context.Context, *proto.PingRequest) (*proto.PingResponse, error) {
	return &proto.PingResponse{ClusterName: "acc", ServerVersion: "17.2.0"}, nil
}

type faultAudit struct {
	auditlogpb.UnimplementedAuditLogServiceServer
	f *Faultd
}

func (a *faultAudit) GetEventExportChunks(req *auditlogpb.GetEventExportChunksRequest, s grpc.ServerStreamingServer[auditlogpb.EventExportChunk]) error {
	a.f.mu.Lock()
	var names []string
	for n := range a.f.chunks[req.GetDate().AsTime().UTC().Format("2006-01-02")] {
		names = append(names, n)
	}
	a.f.mu.Unlock()
	for _, n := range names {
		if err := s.Send(&auditlogpb.EventExportChunk{Chunk: n}); err != nil {
			return err
		}
	}
	return nil
}

func (a *faultAudit) ExportUnstructuredEvents(req *auditlogpb.ExportUnstructuredEventsRequest, s grpc.ServerStreamingServer[auditlogpb.ExportEventUnstructured]) error {
	a.f.mu.Lock()
	frames, ok := a.f.chunks[req.GetDate().AsTime().UTC().Format("2006-01-02")][req.GetChunk()]
	a.f.calls[req.GetChunk()]++
	a.f.mu.Unlock()
	if !ok {
		return status.Errorf(codes.NotFound, "no chunk %q", req.GetChunk())
	}
	from := 0
	if c := req.GetCursor(); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 || n > len(frames) {
			return status.Errorf(codes.InvalidArgument, "bad cursor %q", c)
		}
		from = n
	}
	for _, fr := range frames[from:] {
		// The generic stream would marshal a typed message; the frame goes
		// through the codec as it is.
		if err := s.SendMsg(frame(fr)); err != nil {
			return err
		}
	}
	return nil
}
