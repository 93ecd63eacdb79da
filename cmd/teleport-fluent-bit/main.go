// Command teleport-fluent-bit does what a shared object cannot: set up a
// pipeline (configure), check a configuration against the cluster (check),
// inspect and move the durable cursor (cursor), run the export without
// Fluent Bit (export), and decode Fluent Bit record streams (dump).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

const usage = `usage:
  teleport-fluent-bit configure DIR TELEPORT_ADDR [flags]
        write mTLS certificates (CA, Fluentd server, Fluent Bit client), the Teleport
        role and user, teleport-fluent-bit.toml, Fluent Bit and Fluentd configurations
  teleport-fluent-bit check [--config FILE] [-p key=value ...]
        load the configuration like the plugin, connect, and prove the role's rights
  teleport-fluent-bit export [--config FILE] [-p key=value ...] [--commit]
        run the export without Fluent Bit: one raw Teleport event JSON per line on
        stdout; the cursor is saved only with --commit
  teleport-fluent-bit cursor show  --storage DIR
  teleport-fluent-bit cursor set   --storage DIR --start-time RFC3339 [--yes]
  teleport-fluent-bit cursor reset --storage DIR [--yes]
        print the durable cursor; move it to a new start time; start again from
        the stored start time (refused while a plugin runs on DIR)
  teleport-fluent-bit cursor import-event-handler EH_STORAGE_DIR --storage DIR [--yes]
        make the cursor from Teleport's Event Handler's storage: resume right after
        the last event it sent (see docs/migrating.md)
  teleport-fluent-bit dump [FILE]
        decode a Fluent Bit msgpack record stream (default stdin) into JSON lines

Run a command with -h for its flags.
`

// errQuiet ends the program with status 1 after the command has said why.
var errQuiet = errors.New("")

func main() {
	err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		if err != errQuiet && !errors.Is(err, errHelp) {
			fmt.Fprintln(os.Stderr, "teleport-fluent-bit:", err)
		}
		if errors.Is(err, errHelp) {
			os.Exit(0)
		}
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "configure":
		return configureCmd(args[1:], stdout, stderr)
	case "check":
		return checkCmd(args[1:], stdout, stderr)
	case "export":
		return exportCmd(args[1:], stdout, stderr)
	case "cursor":
		return cursorCmd(args[1:], stdout, stderr)
	case "dump":
		in := stdin
		if len(args) > 1 {
			f, err := os.Open(args[1])
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		return dump(in, stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// dump prints each record like Fluent Bit's stdout output: [time, body].
func dump(in io.Reader, out io.Writer) error {
	r := msgp.NewReader(in)
	enc := json.NewEncoder(out)
	var raw bytes.Buffer
	for {
		raw.Reset()
		if _, err := r.CopyNext(&raw); err != nil {
			if errors.Is(err, io.EOF) || msgp.Cause(err) == io.ErrUnexpectedEOF {
				return nil
			}
			return err
		}
		t, body, _, err := record.Decode(raw.Bytes())
		if err != nil {
			return err
		}
		if err := enc.Encode([]any{t.UTC().Format(time.RFC3339Nano), body}); err != nil {
			return err
		}
	}
}
