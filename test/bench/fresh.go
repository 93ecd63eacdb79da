package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

type freshResult struct {
	rate          float64
	poll          string
	events        int // audit events measured
	missing       int // written in the window but never ingested
	p50, p99, max time.Duration
}

// freshness runs a stand-in writing rate events/s as they happen and the
// plugin following it; the latency of an event is the time the host
// ingested it minus its "time" field (when Teleport wrote it).
func freshness(c *config, dir string, logw io.Writer) (*freshResult, error) {
	auth, err := startAuth(c.auth, filepath.Join(dir, "auth"), "--events", "0",
		"--rate", strconv.FormatFloat(c.rate, 'f', -1, 64), "--seed", "7")
	if err != nil {
		return nil, err
	}
	defer auth.stop()
	ingest := filepath.Join(dir, "ingest.msgpack")
	os.Remove(ingest)
	props := c.pluginProps(auth)
	props["start_time"] = time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	props["poll_interval"] = c.poll
	r, err := startHost(c, filepath.Join(dir, "host"), props, 1000, ingest, logw)
	if err != nil {
		return nil, err
	}
	defer r.h.Kill()
	from := r.started.Add(c.warmup)
	time.Sleep(c.warmup + c.freshFor)
	to := time.Now().Add(-3 * time.Second) // later events may not have had their chance
	if _, err := r.stop(); err != nil {
		return nil, err
	}

	lines, err := readIngestTimes(r.times)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(ingest)
	if err != nil {
		return nil, err
	}
	var lat []time.Duration
	seen := 0
	for _, l := range lines {
		for k := int64(0); k < l.records; k++ {
			_, body, rest, err := record.Decode(data)
			if err != nil {
				return nil, fmt.Errorf("ingest file: %v", err)
			}
			data = rest
			if _, ok := body[record.SessionIDField]; ok {
				continue // a recording event: its time is the session's, not a write time
			}
			ts, _ := body["time"].(string)
			t, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				return nil, fmt.Errorf("record without a usable time: %v", body)
			}
			if t.Before(from) || t.After(to) {
				continue
			}
			seen++
			lat = append(lat, l.at.Sub(t))
		}
	}
	if len(lat) == 0 {
		return nil, fmt.Errorf("no event ingested in the measurement window")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	want := int(c.rate * to.Sub(from).Seconds())
	return &freshResult{rate: c.rate, poll: c.poll, events: seen, missing: max(0, want-seen-int(c.rate)), // ±1 s of rounding at the edges
		p50: q(0.50), p99: q(0.99), max: lat[len(lat)-1]}, nil
}

type restartResult struct {
	cursors    int
	sessions   int
	stateBytes int64
	ready      time.Duration // process start to Init done
	first      time.Duration // process start to the first record ingested
	interval   time.Duration
}

// restartTime writes a state with a cursor inside every chunk of the
// stand-in's backlog (what a restart in the middle of a concurrent export
// of a large backlog resumes), on top of the state the plugin drain left in
// prev (recordings in progress), then measures process start to first
// record.
func restartTime(c *config, auth *authProc, start time.Time, prev, dir string, logw io.Writer) (*restartResult, error) {
	ctx := context.Background()
	clt, err := dialIdentity(ctx, auth.addr, auth.identity)
	if err != nil {
		return nil, err
	}
	defer clt.Close()
	chunks, err := listAllChunks(ctx, clt, start, time.Now())
	if err != nil {
		return nil, err
	}
	// Start from the state a long run left (the plugin drain: its
	// recordings in progress, failed-login counts), when there is one.
	st := cursor.New(start.Add(-time.Minute))
	if prev != "" {
		if p, err := cursor.Peek(prev); err == nil && p != nil {
			st = p
		}
	}
	st.Mode = cursor.ModeExport
	st.Export = &cursor.Export{NextDay: start.UTC().Format(cursor.DayLayout), Days: map[string]*cursor.Day{}}
	for _, ch := range chunks {
		cctx, cancel := context.WithCancel(ctx)
		s := clt.ExportUnstructuredEvents(cctx, &auditlogpb.ExportUnstructuredEventsRequest{Date: timestamppb.New(ch.day), Chunk: ch.chunk})
		if !s.Next() {
			cancel()
			return nil, fmt.Errorf("chunk %s: %v", ch.chunk, s.Done())
		}
		cur := s.Item().GetCursor()
		s.Done()
		cancel()
		day := ch.day.Format(cursor.DayLayout)
		d := st.Export.Days[day]
		if d == nil {
			d = &cursor.Day{Cursors: map[string]string{}}
			st.Export.Days[day] = d
		}
		d.Cursors[ch.chunk] = cur
	}
	storage := filepath.Join(dir, "storage")
	os.RemoveAll(storage)
	store, err := cursor.Open(storage)
	if err != nil {
		return nil, err
	}
	err = store.Save(st)
	store.Close()
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(filepath.Join(storage, "state.json"))
	if err != nil {
		return nil, err
	}

	props := c.pluginProps(auth)
	delete(props, "start_time") // fixed in the state
	props["storage_dir"] = storage
	const interval = 50
	r, err := startHost(c, filepath.Join(dir, "host"), props, interval, "", logw)
	if err != nil {
		return nil, err
	}
	defer r.h.Kill()
	res := &restartResult{cursors: len(chunks), sessions: len(st.Sessions), stateBytes: fi.Size(), interval: interval * time.Millisecond}
	if err := r.h.WaitReady(60 * time.Second); err != nil {
		return nil, err
	}
	res.ready = time.Since(r.started)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		lines, err := readIngestTimes(r.times)
		if err != nil {
			return nil, err
		}
		if len(lines) > 0 {
			res.first = lines[0].at.Sub(r.started)
			_, err := r.stop()
			return res, err
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil, fmt.Errorf("no record within 60s of a restart")
}

var _ = bytes.MinRead
