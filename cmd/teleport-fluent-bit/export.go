package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
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

const exportSynopsis = `export [--config FILE] [-p key=value ...] [--commit | --session SID | --chunk DAY/CHUNK]

Runs the plugin's export engine without Fluent Bit, with the configuration
loaded exactly as the plugin loads it, and writes every record to stdout as
one JSON object per line: the raw Teleport event (the Event Handler's
payload); session recordings also carry recording_session_id. Logs go to
stderr. Without --commit the cursor in storage_dir is never saved (dry_run),
so a later run, or the plugin, exports the same events again; with --commit
it moves past every line written, like the plugin after Fluent Bit took the
records. Stops on Ctrl-C / SIGTERM, or by itself with
-p exit_on_last_event=on once everything up to now is written.

With --session SID it writes the recording of that one session instead, as
the plugin would export it (skip_session_types honoured), and exits: to
re-send a recording the plugin gave up (cursor show lists them under
given_up). The cursor is neither read nor saved.

With --chunk DAY/CHUNK (e.g. 2024-03-01/0193c1d2-...) it writes every
event of that bulk export chunk from its start, as the plugin would export
it (types and skip_event_types honoured), and exits: to re-send a chunk the
plugin set aside (cursor show lists them under set_aside, with the cursor
it stood at: events before it were handed over already). The cursor is
neither read nor saved.`

// exportCallbackBytes is export's callback_bytes unless one is configured:
// the plugin's default before Fluent Bit's chunk size set it
// (docs/chunk-size.md): 150,000 events in 3.1-3.7 s instead of 3.7-4.3 s.
const exportCallbackBytes = 16 << 20

func exportCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", exportSynopsis, stderr)
	var cf configFlags
	cf.register(fs)
	commit := fs.Bool("commit", false, "save the cursor as lines are written (default: a dry run that saves nothing)")
	session := fs.String("session", "", "write the recording of this session id and exit")
	chunk := fs.String("chunk", "", "write the events of this bulk export chunk (DAY/CHUNK) and exit")
	pos, err := parseAll(fs, args)
	if err != nil {
		return flagErr(err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("export: unexpected argument %q", pos[0])
	}
	cfg, notices, err := cf.load(os.Getenv)
	if err != nil {
		return fmt.Errorf("export: %v", err)
	}
	log := logging.New(stderr, "export")
	log.SetDebug(cfg.Debug)
	for _, n := range notices {
		log.Infof("%s", n)
	}
	if *chunk != "" {
		if *commit || *session != "" {
			return errors.New("export: --chunk writes one chunk and saves no cursor: drop --commit and --session")
		}
		return exportChunk(cfg, *chunk, log, stdout)
	}
	if *session != "" {
		if *commit {
			return errors.New("export: --session writes one recording and saves no cursor: drop --commit")
		}
		return exportSession(cfg, *session, log, stdout)
	}
	if !*commit {
		if !cfg.DryRun {
			log.Infof("no --commit: a dry run, the cursor in %s is not saved", cfg.StorageDir)
		}
		cfg.DryRun = true
	} else if cfg.DryRun {
		return errors.New("export: --commit and dry_run contradict each other: drop one")
	}

	// Records written to stdout are delivered: no ring buffer stands
	// between the callback and its output, so nothing waits to commit.
	cfg.CommitDelay = 0
	// Nor a Fluent Bit chunk, which the default callback_bytes is sized
	// for (docs/chunk-size.md): larger takes mean fewer rounds.
	if cfg.Sources["callback_bytes"] == conf.SourceDefault {
		cfg.CallbackBytes = exportCallbackBytes
	}
	stop := make(chan struct{})
	var once sync.Once
	drained := func() { once.Do(func() { close(stop) }) }
	e, err := engine.Start(cfg, engine.Options{Log: log, OnDrained: drained})
	if err != nil {
		return fmt.Errorf("export: %v", err)
	}

	sigs := make(chan os.Signal, 2)
	// SIGPIPE too: a closed stdout (| head) then fails the write instead of
	// killing the process before the engine stops.
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer signal.Stop(sigs)

	w := bufio.NewWriterSize(stdout, 1<<20)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	var written int64
	var werr error
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		if buf := e.Collect(); len(buf) > 0 {
			n, err := writeRecords(enc, buf)
			written += int64(n)
			if err == nil {
				err = w.Flush()
			}
			if err != nil {
				// Not handed over: the cursor does not move past these.
				werr = fmt.Errorf("export: writing to stdout: %v", err)
				break
			}
			e.Handed()
			continue
		}
		select {
		case <-stop:
			break loop
		case s := <-sigs:
			if s == syscall.SIGPIPE {
				continue // the write that follows fails with EPIPE
			}
			log.Infof("%s: stopping", s)
			break loop
		case <-tick.C:
		}
	}
	serr := e.Stop()
	log.Infof("%d records written%s", written, map[bool]string{true: "; cursor saved", false: "; dry run: cursor not saved"}[*commit])
	if werr != nil {
		return werr
	}
	if serr != nil {
		return fmt.Errorf("export: %v", serr)
	}
	return nil
}

// writeRecords writes each Fluent Bit event of buf as its body's JSON.
func writeRecords(enc *json.Encoder, buf []byte) (int, error) {
	n := 0
	for len(buf) > 0 {
		_, body, rest, err := record.Decode(buf)
		if err != nil {
			return n, fmt.Errorf("decoding a record: %v", err)
		}
		if err := enc.Encode(body); err != nil {
			return n, err
		}
		n++
		buf = rest
	}
	return n, nil
}

// exportSession writes the recording of sid as JSON lines.
func exportSession(cfg *conf.Config, sid string, log *logging.Logger, stdout io.Writer) error {
	return exportOne(cfg, "--session "+sid, stdout, func(ctx context.Context, clt *client.Client, each func(record.Item) error) error {
		src := &teleport.SessionSource{API: clt, Skip: cfg.SkipSessionTypes, Log: log, Now: time.Now}
		return src.ExportRecording(ctx, sid, each)
	}, func(n int) { log.Infof("session %s: %d records written", sid, n) })
}

// exportChunk writes the events of one bulk export chunk ("DAY/CHUNK") as
// JSON lines.
func exportChunk(cfg *conf.Config, arg string, log *logging.Logger, stdout io.Writer) error {
	day, name, ok := strings.Cut(arg, "/")
	date, err := time.Parse(cursor.DayLayout, day)
	if !ok || err != nil || name == "" {
		return fmt.Errorf("export: invalid --chunk %q: expected DAY/CHUNK, e.g. 2024-03-01/0193c1d2-7b3a-7c4e-9f00-2b5e6a1c3d4f (cursor show lists set-aside chunks)", arg)
	}
	return exportOne(cfg, "--chunk "+arg, stdout, func(ctx context.Context, clt *client.Client, each func(record.Item) error) error {
		src := &teleport.ExportSource{API: clt, Filter: teleport.NewFilter(cfg.Types, cfg.SkipEventTypes, time.Time{}), Log: log, Now: time.Now}
		return src.ExportChunk(ctx, date, name, each)
	}, func(n int) { log.Infof("chunk %s of %s: %d records written", name, day, n) })
}

// exportOne connects, runs one export (a recording or a chunk) that ends
// by itself, and writes its records to stdout as JSON lines; SIGINT and
// SIGTERM stop it.
func exportOne(cfg *conf.Config, what string, stdout io.Writer,
	run func(context.Context, *client.Client, func(record.Item) error) error, done func(n int)) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	creds, err := teleport.LoadCredentials(cfg, time.Now())
	if err != nil {
		return fmt.Errorf("export: %v", err)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	clt, err := teleport.Dial(dctx, cfg.TeleportAddr, creds.Credentials)
	cancel()
	if err != nil {
		return fmt.Errorf("export: cannot connect to Teleport at %s: %s", cfg.TeleportAddr, logging.OneLine(err.Error()))
	}
	defer clt.Close()
	w := bufio.NewWriterSize(stdout, 1<<20)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	n := 0
	err = run(ctx, clt, func(it record.Item) error {
		k, err := writeRecords(enc, it.Data)
		n += k
		return err
	})
	if ferr := w.Flush(); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("export %s: %d records written, then: %s", what, n, logging.OneLine(err.Error()))
	}
	done(n)
	return nil
}
