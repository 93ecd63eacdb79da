package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gravitational/teleport/api/client"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/engine"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/teleport"
)

// The audit path alone: the plugin's bulk export source (the same code,
// Concurrency chunks at a time), the engine's queue, a stager copying
// records into the next take's buffer, and a loop that every second takes
// that buffer and commits the cursor (apply + durable save), like Collect
// and Handed. No session
// recordings and no locking. It runs as a child process (bench
// -audit-path-child) so that its CPU time and peak RSS are its own.

type auditPathResult struct {
	N       int64   `json:"n"`
	WallS   float64 `json:"wall_s"`   // process start to the take that completed n
	CPUS    float64 `json:"cpu_s"`    // CPU time by then
	HWM     int64   `json:"hwm"`      // peak RSS by then
	Steady  float64 `json:"steady"`   // events/s from the first take with records on
	MaxTake int64   `json:"max_take"` // largest take (records)
}

func (a *auditPathResult) rate() float64 { return float64(a.N) / a.WallS }

func (a *auditPathResult) String() string {
	return fmt.Sprintf("%d events in %.2fs: %.0f events/s (steady %.0f/s, largest take %d records); CPU %.1f s/M events; peak RSS %s",
		a.N, a.WallS, a.rate(), a.Steady, a.MaxTake, a.CPUS/float64(a.N)*1e6, mb(a.HWM))
}

// auditSettings are the callback_bytes and queue_bytes of the audit path
// alone: the ceiling's, so that it shows what the path can carry.
func (c *config) auditSettings() (callback, queue string) {
	if c.ceilingCallback == "" {
		return c.callbackBytes, c.queueBytes
	}
	return c.ceilingCallback, c.ceilingQueue
}

// runAuditPath runs this program as the audit-path child.
func runAuditPath(c *config, auth *authProc, start time.Time, memLimit string) (*auditPathResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cb, qb := c.auditSettings()
	storage := filepath.Join(c.dir, "audit-path", "storage")
	os.RemoveAll(storage)
	cmd := exec.Command(self, "-audit-path-child",
		"-child-addr", auth.addr, "-child-identity", auth.identity, "-child-storage", storage,
		"-child-start", start.Format(time.RFC3339Nano), "-n", strconv.FormatInt(c.n, 10),
		"-concurrency", strconv.Itoa(c.concurrency), "-ceiling-callback-bytes", cb, "-ceiling-queue-bytes", qb)
	cmd.Stderr = os.Stderr
	if memLimit != "" {
		cmd.Env = append(os.Environ(), "GOMEMLIMIT="+memLimit)
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("audit-path child: %v", err)
	}
	var r auditPathResult
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("audit-path child said %q: %v", out, err)
	}
	return &r, nil
}

// auditPathChild is the child's main.
func auditPathChild(addr, identity, storage, startS string, n int64, concurrency int, callbackBytes, queueBytes string) error {
	t0 := time.Now()
	cfg, _, err := conf.Load(func(k string) string {
		return map[string]string{"teleport_addr": addr, "storage_dir": storage, "teleport_identity": identity,
			"callback_bytes": callbackBytes, "queue_bytes": queueBytes}[k]
	}, nil)
	if err != nil {
		return err
	}
	from, err := time.Parse(time.RFC3339Nano, startS)
	if err != nil {
		return err
	}
	ctx := context.Background()
	clt, err := teleport.Dial(ctx, addr, client.LoadIdentityFile(identity))
	if err != nil {
		return err
	}
	defer clt.Close()
	store, err := cursor.Open(storage)
	if err != nil {
		return err
	}
	defer store.Close()
	st := cursor.New(from)
	work := &cursor.Export{NextDay: from.UTC().Format(cursor.DayLayout)}
	// The engine's audit queue: half of queue_bytes (the other half is the
	// recordings').
	q := engine.NewQueue(cfg.QueueBytes/2, nil)
	quiet := logging.New(io.Discard, "teleport")
	src := &teleport.ExportSource{API: clt, Filter: teleport.NewFilter(nil, nil, from), Concurrency: concurrency,
		Poll: time.Hour, Log: quiet, Now: time.Now}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = src.Run(rctx, work, q) }()

	// A stager moves records into the next take's buffer as they are
	// queued, like the engine's (engine/stage.go); every second the buffer
	// is taken and its positions committed.
	// The buffer is mapped memory, outside the Go heap, like the plugin's
	// C buffer; only the pages written count towards RSS.
	mapBuf := func() []byte {
		b, err := syscall.Mmap(-1, 0, cfg.CallbackBytes, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			fatal(err)
		}
		return b[:0]
	}
	var (
		mu     sync.Mutex
		buf    = mapBuf()
		staged []record.Item
		took   int64
	)
	go func() {
		var items []record.Item
		for rctx.Err() == nil {
			mu.Lock()
			room := cap(buf) - len(buf)
			mu.Unlock()
			items = q.TakeUpTo(items[:0], min(room/2+1, 1<<20))
			if len(items) == 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			mu.Lock()
			for k := range items {
				if len(items[k].Data) > cap(buf)-len(buf) {
					fatal(fmt.Errorf("a record larger than callback_bytes"))
				}
				buf = append(buf, items[k].Data...) // within cap: no reallocation
				if items[k].Data != nil {
					took++
				}
				items[k].Data = nil
				staged = append(staged, items[k])
				items[k] = record.Item{}
			}
			mu.Unlock()
		}
	}()
	var records, firstRecs int64
	var first time.Time
	res := &auditPathResult{}
	next := t0
	for records < n {
		next = next.Add(time.Second)
		time.Sleep(time.Until(next))
		mu.Lock()
		items, n1, old := staged, took, buf
		buf, staged, took = mapBuf(), nil, 0
		mu.Unlock()
		_ = syscall.Munmap(old[:cap(old)]) // handed over: Fluent Bit has its copy
		for k := range items {
			if items[k].Pos.Kind != 0 {
				st.Apply(&items[k].Pos)
			}
		}
		if len(items) > 0 {
			if err := store.Save(st); err != nil {
				return err
			}
		}
		if n1 > 0 && first.IsZero() {
			first, firstRecs = time.Now(), n1
		}
		records += n1
		res.MaxTake = max(res.MaxTake, n1)
	}
	res.N = records
	res.WallS = time.Since(t0).Seconds()
	res.CPUS = selfCPU().Seconds()
	res.HWM, _ = procHWM(os.Getpid())
	if d := time.Since(first).Seconds(); d > 0 {
		res.Steady = float64(records-firstRecs) / d
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
