// Package hostile is the bad-input corpus of issue 7: configuration,
// credential, state and storage cases under testdata/, each with the exact
// outcome the plugin's Init must have (one error line naming the key or
// file, or a pass-through), and the fixtures that prepare them.
//
// A case is a txtar-like file:
//
//	# what the case is about; a line "# e2e" also runs it through the real .so
//	-- props --
//	batch=0                      (over the defaults; "key=" removes a default)
//	-- env --
//	FDFWD_BATCH=7
//	-- setup --
//	identity id -1m              (see Prepare for the directives)
//	-- config.toml --
//	any other section is a file written under $DIR before the setup runs
//	-- want --
//	error: invalid batch "0": must be between 1 and 10000
//
// Every value may use $DIR (the case's directory) and $ADDR (the Teleport
// stand-in's address). The want section is either one `error: LINE` (the
// whole message Init logs, {{any}} matching any text and {{time}} an RFC 3339
// time) or `ok` followed by `key=value` lines checked against the loaded
// configuration and `notice: LINE` lines (the info lines Init logs).
// Unless a case says `changes: PATH`, a failing Init must leave every file
// that existed before it byte for byte and mode for mode as it was.
package hostile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Case is one corpus file.
type Case struct {
	Name    string // path under testdata without .txt, e.g. "conf/batch-zero"
	Comment string
	E2E     bool // also run through the real .so
	Props   [][2]string
	Env     [][2]string
	Steps   []Step // file sections and setup directives, in file order
	Want    Want
}

// Step prepares one thing: writes a file section, or runs a setup directive.
type Step struct {
	File      string // path relative to $DIR of a file section
	Data      []byte
	Directive string
}

// Want is the expected outcome.
type Want struct {
	Error   string            // the error line (with placeholders); "" for ok
	Fields  map[string]string // ok: values of conf.Config.Redacted
	Notices []string          // ok: notices Init logs
	Changes []string          // paths (relative to $DIR) Init may change
}

// Load reads every case under dir (recursively), sorted by name.
func Load(dir string) ([]*Case, error) {
	var cases []*Case
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".txt") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		c, err := Parse(strings.TrimSuffix(filepath.ToSlash(rel), ".txt"), data)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		cases = append(cases, c)
		return nil
	})
	sort.Slice(cases, func(i, j int) bool { return cases[i].Name < cases[j].Name })
	return cases, err
}

var sectionRe = regexp.MustCompile(`^-- (\S+) --$`)

// Parse reads one case.
func Parse(name string, data []byte) (*Case, error) {
	c := &Case{Name: name}
	var section string
	var body []string
	flush := func() error {
		text := strings.Join(body, "")
		switch section {
		case "":
			for _, l := range strings.Split(text, "\n") {
				l = strings.TrimSpace(strings.TrimPrefix(l, "#"))
				if l == "e2e" {
					c.E2E = true
				} else if l != "" {
					c.Comment += l + " "
				}
			}
			c.Comment = strings.TrimSpace(c.Comment)
		case "props", "env":
			// Values are kept as written, trailing blanks included.
			for _, l := range lines(text, false) {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return fmt.Errorf("%s: %q is not key=value", section, l)
				}
				if section == "props" {
					c.Props = append(c.Props, [2]string{k, v})
				} else {
					c.Env = append(c.Env, [2]string{k, v})
				}
			}
		case "setup":
			for _, l := range lines(text, true) {
				c.Steps = append(c.Steps, Step{Directive: l})
			}
		case "want":
			for _, l := range lines(text, true) {
				switch {
				case strings.HasPrefix(l, "error: "):
					c.Want.Error = strings.TrimPrefix(l, "error: ")
				case l == "ok":
				case strings.HasPrefix(l, "notice: "):
					c.Want.Notices = append(c.Want.Notices, strings.TrimPrefix(l, "notice: "))
				case strings.HasPrefix(l, "changes: "):
					c.Want.Changes = append(c.Want.Changes, strings.TrimPrefix(l, "changes: "))
				default:
					k, v, ok := strings.Cut(l, "=")
					if !ok {
						return fmt.Errorf("want: cannot read %q", l)
					}
					if c.Want.Fields == nil {
						c.Want.Fields = map[string]string{}
					}
					c.Want.Fields[k] = v
				}
			}
		default:
			c.Steps = append(c.Steps, Step{File: section, Data: []byte(text)})
		}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if m := sectionRe.FindStringSubmatch(l); m != nil {
			if err := flush(); err != nil {
				return nil, err
			}
			section, body = m[1], nil
			continue
		}
		body = append(body, l+"\n")
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if c.Want.Error == "" && c.Want.Fields == nil && len(c.Want.Notices) == 0 && !bytes.Contains(data, []byte("\n-- want --\nok")) {
		return nil, fmt.Errorf("no want section")
	}
	return c, nil
}

// lines returns the non-blank lines of s, without comments (lines starting
// with "#"), and without trailing blanks when trim is set.
func lines(s string, trim bool) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if trim {
			l = strings.TrimRight(l, " \t")
		}
		out = append(out, l)
	}
	return out
}

// Authority issues credentials; *teleportd.Server implements it.
type Authority interface {
	WriteIdentity(path string, ttl time.Duration) error
	WriteKeyPair(certPath, keyPath, caPath string, ttl time.Duration) error
}

// Fixture is what a case is prepared with.
type Fixture struct {
	Dir     string    // the case's directory ($DIR)
	Addr    string    // $ADDR
	Auth    Authority // the cluster the plugin talks to
	Foreign Authority // another cluster, with another CA
	// Cleanup registers what undoes a setup step (a mount); t.Cleanup.
	Cleanup func(func())
}

// ErrNoMount is returned by Prepare when a tmpfs cannot be mounted (not
// root, or no CAP_SYS_ADMIN): the case cannot run here.
var ErrNoMount = errors.New("cannot mount a tmpfs here")

// Expand replaces $DIR and $ADDR.
func (fx Fixture) Expand(s string) string {
	return strings.NewReplacer("$DIR", fx.Dir, "$ADDR", fx.Addr).Replace(s)
}

// DefaultProps are the properties of a working Init; a case's props go on
// top. The setup always writes a valid identity at $DIR/identity.
var DefaultProps = [][2]string{
	{"teleport_addr", "$ADDR"},
	{"teleport_identity", "$DIR/identity"},
	{"storage_dir", "$DIR/storage"},
	{"start_time", "2026-11-18T00:00:00Z"},
}

// Properties returns the case's properties over DefaultProps, expanded, in
// a stable order.
func (c *Case) Properties(fx Fixture) [][2]string {
	m := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := m[k]; !ok {
			order = append(order, k)
		}
		m[k] = v
	}
	for _, kv := range DefaultProps {
		set(kv[0], kv[1])
	}
	for _, kv := range c.Props {
		set(kv[0], kv[1])
	}
	var out [][2]string
	for _, k := range order {
		if m[k] != "" { // "key=" removes a default; "key=  " is passed as is
			out = append(out, [2]string{k, fx.Expand(m[k])})
		}
	}
	return out
}

// Environment returns the case's FDFWD_ variables, expanded.
func (c *Case) Environment(fx Fixture) [][2]string {
	var out [][2]string
	for _, kv := range c.Env {
		out = append(out, [2]string{kv[0], fx.Expand(kv[1])})
	}
	return out
}

// Prepare writes the case's files under fx.Dir and runs its setup
// directives, in the order of the case file:
//
//	identity PATH TTL          an identity file of the cluster (TTL: 1h, -1m)
//	foreign-identity PATH TTL  an identity file of another cluster
//	keypair CERT KEY CA TTL    a certificate, key and CA of the cluster
//	mkdir PATH MODE            a directory
//	chmod PATH MODE
//	fifo PATH                  a named pipe (a reader blocks until a writer comes)
//	symlink PATH TARGET
//	truncate PATH N            keep the first N bytes
//	remove PATH
//	tmpfs PATH SIZE            mount a tmpfs of SIZE (e.g. 64k), mode 0700, at PATH
//	fill PATH                  fill the file system of PATH up (a file PATH/filler)
//	readonly PATH              remount the tmpfs at PATH read-only
//
// Paths are relative to fx.Dir unless absolute. A valid identity is written
// at identity first.
func (c *Case) Prepare(fx Fixture) error {
	if err := fx.Auth.WriteIdentity(filepath.Join(fx.Dir, "identity"), time.Hour); err != nil {
		return err
	}
	path := func(p string) string {
		p = fx.Expand(p)
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(fx.Dir, p)
	}
	for _, st := range c.Steps {
		if st.File != "" {
			p := filepath.Join(fx.Dir, st.File)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte(fx.Expand(string(st.Data))), 0o600); err != nil {
				return err
			}
			continue
		}
		l := st.Directive
		f := strings.Fields(l)
		need := func(n int) error {
			if len(f) != n+1 {
				return fmt.Errorf("setup %q: want %d arguments", l, n)
			}
			return nil
		}
		var err error
		switch f[0] {
		case "identity", "foreign-identity":
			if err = need(2); err != nil {
				return err
			}
			var ttl time.Duration
			if ttl, err = time.ParseDuration(f[2]); err != nil {
				return err
			}
			a := fx.Auth
			if f[0] == "foreign-identity" {
				a = fx.Foreign
			}
			err = a.WriteIdentity(path(f[1]), ttl)
		case "keypair":
			if err = need(4); err != nil {
				return err
			}
			var ttl time.Duration
			if ttl, err = time.ParseDuration(f[4]); err != nil {
				return err
			}
			err = fx.Auth.WriteKeyPair(path(f[1]), path(f[2]), path(f[3]), ttl)
		case "mkdir", "chmod":
			if err = need(2); err != nil {
				return err
			}
			var mode uint64
			if mode, err = strconv.ParseUint(f[2], 8, 32); err != nil {
				return err
			}
			if f[0] == "mkdir" {
				if err = os.MkdirAll(path(f[1]), 0o700); err != nil {
					return err
				}
			}
			err = os.Chmod(path(f[1]), os.FileMode(mode))
		case "fifo":
			if err = need(1); err != nil {
				return err
			}
			err = syscall.Mkfifo(path(f[1]), 0o600)
		case "symlink":
			if err = need(2); err != nil {
				return err
			}
			err = os.Symlink(fx.Expand(f[2]), path(f[1]))
		case "truncate":
			if err = need(2); err != nil {
				return err
			}
			var n int64
			if n, err = strconv.ParseInt(f[2], 10, 64); err != nil {
				return err
			}
			err = os.Truncate(path(f[1]), n)
		case "tmpfs":
			if err = need(2); err != nil {
				return err
			}
			err = mountTmpfs(fx, path(f[1]), f[2])
		case "fill":
			if err = need(1); err != nil {
				return err
			}
			err = Fill(path(f[1]))
		case "readonly":
			if err = need(1); err != nil {
				return err
			}
			err = syscall.Mount("none", path(f[1]), "", syscall.MS_REMOUNT|syscall.MS_RDONLY, "")
		case "remove":
			if err = need(1); err != nil {
				return err
			}
			err = os.RemoveAll(path(f[1]))
		default:
			return fmt.Errorf("unknown setup directive %q", l)
		}
		if err != nil {
			return fmt.Errorf("setup %q: %w", l, err)
		}
	}
	return nil
}

// Match reports whether msg is the wanted error line: placeholders
// expanded, {{any}} matching any text and {{time}} an RFC 3339 time.
func (fx Fixture) Match(want, msg string) bool {
	re := regexp.QuoteMeta(fx.Expand(want))
	re = strings.ReplaceAll(re, regexp.QuoteMeta("{{any}}"), `.*`)
	re = strings.ReplaceAll(re, regexp.QuoteMeta("{{time}}"), `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	return regexp.MustCompile(`^` + re + `$`).MatchString(msg)
}

// Snapshot is the content and mode of every file and directory under a
// directory (symbolic links and pipes by their kind and target, never
// opened), to prove Init left them alone.
type Snapshot map[string]string

// Take snapshots dir.
func Take(dir string) (Snapshot, error) {
	s := Snapshot{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			t, _ := os.Readlink(path)
			desc += " -> " + t
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			desc += " " + strconv.Quote(string(b))
		}
		s[rel] = desc
		return nil
	})
	return s, err
}

// Diff lists what changed from before to after among the entries that
// existed before (except those in allowed, and their contents), and the
// new entries (except lock files, which Open creates and Init may leave).
func (before Snapshot) Diff(after Snapshot, allowed []string) []string {
	ok := func(p string) bool {
		for _, a := range allowed {
			if p == a || strings.HasPrefix(p, a+"/") {
				return true
			}
		}
		return false
	}
	var out []string
	for p, d := range before {
		if ok(p) {
			continue
		}
		if a, found := after[p]; !found {
			out = append(out, "removed "+p)
		} else if a != d {
			out = append(out, fmt.Sprintf("changed %s: %.200s -> %.200s", p, d, a))
		}
	}
	for p := range after {
		if _, found := before[p]; !found && !ok(p) && filepath.Base(p) != "lock" {
			out = append(out, "created "+p)
		}
	}
	sort.Strings(out)
	return out
}

// mountTmpfs mounts a tmpfs of size at dir (created 0700), unmounted at
// cleanup.
func mountTmpfs(fx Fixture, dir, size string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("%w: %v", ErrNoMount, err)
		}
		return err
	}
	if fx.Cleanup != nil {
		fx.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	}
	return nil
}

// Fill writes dir/filler until the file system is full.
func Fill(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "filler"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
}
