package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/eventhandler"
)

const cursorSynopsis = `cursor show|set|reset|import-event-handler --storage DIR [flags]

  show   print the durable cursor (state.json) as JSON; works while the plugin runs;
         given_up lists the session recordings given up (why, when), which
         export --session SID writes again; set_aside lists the bulk export
         chunks set aside (day, chunk, why, when), which export --chunk
         DAY/CHUNK writes again
  set    move the cursor to --start-time: the next run exports events from that
         time on, as a first run would (progress and recordings in progress are
         forgotten; locks already due are kept)
  reset  the same with the stored start time: export everything again
  import-event-handler EH_STORAGE_DIR
         make the cursor from the storage of Teleport's Event Handler (its
         storage directory or one <host>_<port> directory in it; stop the
         Event Handler first): the plugin resumes right after the last event it
         sent, and its recordings in progress after their last event sent;
         says what the plugin will do and why
set and reset change nothing without --yes, nor does import-event-handler
over an existing state; all three are refused while a plugin (Fluent Bit)
holds DIR: stop it first.`

func cursorCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "usage: teleport-fluent-bit %s\n", cursorSynopsis)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return errHelp
		}
		return errors.New("cursor: expected show, set, reset or import-event-handler")
	}
	sub := args[0]
	fs := newFlags("cursor "+sub, cursorSynopsis, stderr)
	dir := fs.String("storage", "", "the plugin's storage_dir")
	var startTime *string
	var yes *bool
	var windowSize *time.Duration
	switch sub {
	case "show":
	case "set":
		startTime = fs.String("start-time", "", "the new start time, RFC 3339 (e.g. 2024-01-02T15:04:05Z)")
		yes = fs.Bool("yes", false, "do it (without it, only say what would change)")
	case "reset":
		yes = fs.Bool("yes", false, "do it (without it, only say what would change)")
	case "import-event-handler":
		yes = fs.Bool("yes", false, "replace a state DIR holds already")
		windowSize = fs.Duration("window-size", eventhandler.DefaultWindowSize, "the Event Handler's window-size (its windowed search)")
	default:
		fmt.Fprintf(stderr, "usage: teleport-fluent-bit %s\n", cursorSynopsis)
		return fmt.Errorf("cursor: unknown subcommand %q: expected show, set, reset or import-event-handler", sub)
	}
	pos, err := parseAll(fs, args[1:])
	if err != nil {
		return flagErr(err)
	}
	var ehDir string
	if sub == "import-event-handler" && len(pos) > 0 {
		ehDir, pos = pos[0], pos[1:]
	}
	if len(pos) > 0 {
		return fmt.Errorf("cursor %s: unexpected argument %q", sub, pos[0])
	}
	if *dir == "" {
		return fmt.Errorf("cursor %s: --storage is required", sub)
	}

	switch sub {
	case "show":
		st, err := cursor.Peek(*dir)
		if err != nil {
			return err
		}
		if st == nil {
			return fmt.Errorf("cursor show: no state in %s (the plugin has not run there yet)", *dir)
		}
		if locked, err := cursor.Locked(*dir); err == nil && locked {
			fmt.Fprintf(stderr, "note: %s is in use by a running plugin; this is its last saved state\n", *dir)
		}
		fmt.Fprintf(stderr, "resumes: %s\n", st.Summary())
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
		if n := len(st.GivenUp); n > 0 {
			fmt.Fprintf(stderr, "note: %d session recordings were given up (given_up, newest last", n)
			if st.GivenUpDropped > 0 {
				fmt.Fprintf(stderr, "; %d older ones no longer listed", st.GivenUpDropped)
			}
			fmt.Fprintf(stderr, "); write one as JSON lines with: teleport-fluent-bit export --config FILE --session %s\n", st.GivenUp[n-1].SessionID)
		}
		if n := len(st.SetAside); n > 0 {
			fmt.Fprintf(stderr, "note: %d bulk export chunks were set aside (set_aside, newest last", n)
			if st.SetAsideDropped > 0 {
				fmt.Fprintf(stderr, "; %d older ones no longer listed", st.SetAsideDropped)
			}
			c := st.SetAside[n-1]
			fmt.Fprintf(stderr, "); write one as JSON lines with: teleport-fluent-bit export --config FILE --chunk %s/%s\n", c.Day, c.Chunk)
		}
		return nil

	case "set":
		if *startTime == "" {
			return errors.New("cursor set: --start-time is required (RFC 3339, e.g. 2024-01-02T15:04:05Z)")
		}
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(*startTime))
		if err != nil {
			return fmt.Errorf("cursor set: invalid --start-time %q: must be an RFC 3339 time such as 2024-01-02T15:04:05Z", *startTime)
		}
		return moveCursor(stdout, *dir, "set", *yes, func(old *cursor.State) (*cursor.State, error) {
			return old.Restart(t), nil
		})

	case "import-event-handler":
		if ehDir == "" {
			return errors.New("cursor import-event-handler: the Event Handler's storage directory is required (its storage setting, e.g. /var/lib/teleport-event-handler)")
		}
		return importEventHandler(stdout, ehDir, *dir, *windowSize, *yes)

	default: // reset
		return moveCursor(stdout, *dir, "reset", *yes, func(old *cursor.State) (*cursor.State, error) {
			if old == nil {
				return nil, fmt.Errorf("cursor reset: no state in %s to reset (the plugin has not run there yet); use cursor set --start-time to create one", *dir)
			}
			return old.Restart(old.StartTime), nil
		})
	}
}

// moveCursor replaces the state of dir with what change makes of it, under
// the storage lock (so never while a plugin runs there) and only with yes.
func moveCursor(stdout io.Writer, dir, sub string, yes bool, change func(*cursor.State) (*cursor.State, error)) error {
	if sub == "reset" {
		// Do not create a directory just to say there is nothing to reset.
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cursor reset: %s does not exist", dir)
		}
	}
	store, err := cursor.Open(dir)
	if errors.Is(err, cursor.ErrInUse) {
		return fmt.Errorf("cursor %s: %v; stop Fluent Bit (or the export) using it first", sub, err)
	}
	if err != nil {
		return fmt.Errorf("cursor %s: %v", sub, err)
	}
	defer store.Close()
	old, err := store.Load()
	if err != nil {
		return fmt.Errorf("cursor %s: %v", sub, err)
	}
	st, err := change(old)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "state file: %s\nnow:   %s\nafter: %s\n", store.Path(), old.Summary(), st.Summary())
	if !yes {
		return fmt.Errorf("cursor %s: nothing changed: run again with --yes to replace the state", sub)
	}
	// The memory of events and recordings handed over goes first: kept, it
	// would drop the events the new cursor is to export again.
	if err := store.ForgetMemory(); err != nil {
		return fmt.Errorf("cursor %s: %v", sub, err)
	}
	if err := store.Save(st); err != nil {
		return fmt.Errorf("cursor %s: %v", sub, err)
	}
	start := st.StartTime.Format(time.RFC3339Nano)
	if sub == "import-event-handler" {
		fmt.Fprintf(stdout, "saved: the next run resumes where the Event Handler stopped; do not start the Event Handler again on its storage.\n")
	} else {
		fmt.Fprintf(stdout, "saved: the next run exports events from %s on.\n", start)
	}
	fmt.Fprintf(stdout, "note: a start_time in the plugin's configuration must now be %s or unset (another one is refused at start).\n", start)
	return nil
}

// importEventHandler makes the cursor of dir from the Event Handler's
// storage ehDir, under the storage lock; a state already there is replaced
// only with yes.
func importEventHandler(stdout io.Writer, ehDir, dir string, windowSize time.Duration, yes bool) error {
	const sub = "import-event-handler"
	src, err := eventhandler.Find(ehDir)
	if err != nil {
		return fmt.Errorf("cursor %s: %v", sub, err)
	}
	stored, err := eventhandler.Read(src)
	if err != nil {
		return fmt.Errorf("cursor %s: %v", sub, err)
	}
	res, err := eventhandler.Convert(stored, eventhandler.Options{Now: time.Now(), WindowSize: windowSize})
	if err != nil {
		return fmt.Errorf("cursor %s: %v", sub, err)
	}
	fmt.Fprintf(stdout, "Event Handler state: %s (%s)\n", src, res.Kind)
	for _, n := range res.Notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	return moveCursor(stdout, dir, sub, true, func(old *cursor.State) (*cursor.State, error) {
		if old != nil && !yes {
			return nil, fmt.Errorf("cursor %s: %s holds a state already (%s); nothing changed: import into a new storage_dir, or run again with --yes to replace it", sub, dir, old.Summary())
		}
		return res.State, nil
	})
}
