// Command teleport-fluent-bit does what a shared object cannot: inspect the
// durable cursor and decode Fluent Bit record streams for debugging.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/cursor"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

const usage = `usage:
  teleport-fluent-bit cursor show --storage DIR   print the durable cursor as JSON
  teleport-fluent-bit dump [FILE]                 decode a Fluent Bit msgpack record stream (default stdin) into JSON lines
`

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "teleport-fluent-bit:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("no command\n%s", usage)
	}
	switch args[0] {
	case "cursor":
		if len(args) < 2 || args[1] != "show" {
			return fmt.Errorf("cursor: expected `cursor show --storage DIR`\n%s", usage)
		}
		fs := flag.NewFlagSet("cursor show", flag.ContinueOnError)
		dir := fs.String("storage", "", "storage_dir of the plugin")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		if *dir == "" {
			return fmt.Errorf("cursor show: --storage is required")
		}
		st, err := cursor.Peek(*dir)
		if err != nil {
			return err
		}
		if st == nil {
			return fmt.Errorf("cursor show: no state in %s (the plugin has not run there yet)", *dir)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
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
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
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
