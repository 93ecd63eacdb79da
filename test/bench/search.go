package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gravitational/teleport/api/client"
	"github.com/gravitational/teleport/api/types"
)

// The search-path section: a stand-in without the export API (as Teleport's
// file backend) serving searchN events over searchDays, each search call
// taking at least searchPageDelay (the file backend reads the queried days
// for every page). A bare teleport/api client pages through the same UTC
// days serially and with one goroutine per day at several page sizes; the
// plugin drains the same backlog with the same batch. The backlog holds no
// SSH sessions (--no-sessions), so both read audit events alone: the
// plugin would also track the recordings sessions announce. The same
// drain over the stand-in's usual backlog (a session.end and a
// session.upload in every 8 events, recordings answering NotFound) is
// measured too, against the best bare client on that backlog.

// searchRun is one bare search client run.
type searchRun struct {
	limit    int
	parallel bool
	n        int64
	wall     time.Duration
	pages    int64
}

func (s searchRun) rate() float64 { return float64(s.n) / s.wall.Seconds() }

func (s searchRun) label() string {
	if s.parallel {
		return fmt.Sprintf("pages of %s, one goroutine per UTC day", count(int64(s.limit)))
	}
	return fmt.Sprintf("pages of %s, days one after another", count(int64(s.limit)))
}

type searchResult struct {
	n, batch  int
	days      float64
	delay     time.Duration
	bare      []searchRun
	plugin    *drainResult
	oldPlugin *drainResult // -search-old-plugin, when given
	// sessions: the usual backlog, with SSH sessions whose recordings
	// answer NotFound: the best bare client and the plugin there.
	sessBare   searchRun
	sessPlugin *drainResult
	// backends: the same backlog from the stand-in answering as Teleport's
	// audit backends (-search-backends), with their cost models.
	backends []backendRun
}

// backendRun is the bare clients and the plugin on one backend mode.
type backendRun struct {
	name   string
	bare   []searchRun
	plugin *drainResult
}

func (b backendRun) best() searchRun {
	r := searchResult{bare: b.bare}
	return r.best()
}

// best is the fastest bare run.
func (r *searchResult) best() searchRun {
	var b searchRun
	for _, s := range r.bare {
		if s.rate() > b.rate() || b.n == 0 {
			b = s
		}
	}
	return b
}

// serial is the bare client paging days one after another with pages of
// batch: the search the plugin did before windows ran in parallel.
func (r *searchResult) serial() (searchRun, bool) {
	for _, s := range r.bare {
		if !s.parallel && s.limit == r.batch {
			return s, true
		}
	}
	return searchRun{}, false
}

// bareSearch pages through [from, to) cut into UTC days, limit events per
// page, the days one after another or all at once, discarding the events.
func bareSearch(ctx context.Context, clt *client.Client, from, to time.Time, limit int, parallel bool) (searchRun, error) {
	run := searchRun{limit: limit, parallel: parallel}
	var (
		n, pages atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		ferr     error
		seen     = map[string]struct{}{}
	)
	day := func(lo, hi time.Time) {
		key := ""
		for {
			evs, next, err := clt.SearchUnstructuredEvents(ctx, lo, hi, "default", nil, limit, types.EventOrderAscending, key)
			if err != nil {
				mu.Lock()
				ferr = err
				mu.Unlock()
				return
			}
			pages.Add(1)
			// Distinct events: a backend with ranges inclusive of whole
			// seconds at both ends (DynamoDB) answers an event at a day's
			// boundary in both days.
			mu.Lock()
			for _, ev := range evs {
				if _, ok := seen[ev.GetId()]; !ok || ev.GetId() == "" {
					seen[ev.GetId()] = struct{}{}
					n.Add(1)
				}
			}
			mu.Unlock()
			if next == "" {
				return
			}
			key = next
		}
	}
	t0 := time.Now()
	for lo := from; lo.Before(to); {
		hi := lo.Truncate(24 * time.Hour).Add(24 * time.Hour)
		if hi.After(to) {
			hi = to
		}
		if parallel {
			wg.Add(1)
			go func(lo, hi time.Time) { defer wg.Done(); day(lo, hi) }(lo, hi)
		} else {
			day(lo, hi)
		}
		lo = hi
	}
	wg.Wait()
	run.wall, run.n, run.pages = time.Since(t0), n.Load(), pages.Load()
	return run, ferr
}

func runSearch(c *config, logw io.Writer) (*searchResult, error) {
	res := &searchResult{n: c.searchN, batch: c.searchBatch, days: c.searchDays, delay: c.searchDelay}
	if err := runSearchBackends(c, res, logw); err != nil {
		return nil, err
	}
	if c.searchSkipIdeal {
		return res, nil
	}
	best := []searchConf{{c.searchBatch, false}, {1000, false}, {5000, false}, {10000, false}, {1000, true}, {5000, true}, {10000, true}}
	bare, plugin, err := searchBacklog(c, "auth-search", "plugin-search", best, 3, logw, "--no-sessions")
	if err != nil {
		return nil, err
	}
	res.bare, res.plugin = bare, plugin
	if c.searchOldPlugin != "" {
		old := *c
		old.plugin = c.searchOldPlugin
		_, d, err := searchBacklog(&old, "auth-search-old", "plugin-search-old", nil, 1, logw, "--no-sessions")
		if err != nil {
			return nil, err
		}
		res.oldPlugin = d
		progress("  plugin %s: %s", c.searchOldPlugin, d)
	}
	progress("  the same with the stand-in's SSH sessions (recordings NotFound)")
	b := res.best()
	bare, plugin, err = searchBacklog(c, "auth-search-sessions", "plugin-search-sessions", []searchConf{{b.limit, b.parallel}}, 1, logw, "--no-recordings")
	if err != nil {
		return nil, err
	}
	res.sessBare, res.sessPlugin = bare[0], plugin
	return res, nil
}

// runSearchBackends drains the search backlog from the stand-in answering
// as each of -search-backends: no page delay but the backend's own cost
// model (test/teleportd/README.md), no visibility lag (every event of the
// backlog is there from the start) and no rate limit, the bare client with
// one goroutine per UTC day at the largest pages, and the plugin (median
// of three drains).
func runSearchBackends(c *config, res *searchResult, logw io.Writer) error {
	for _, b := range strings.Split(c.searchBackends, ",") {
		if b = strings.TrimSpace(b); b == "" {
			continue
		}
		progress("  the same backlog, the stand-in answering as %s", b)
		confs := []searchConf{{5000, true}, {10000, true}}
		bare, plugin, err := searchBacklog(c, "auth-search-"+b, "plugin-search-"+b, confs, 3, logw,
			"--no-sessions", "--backend", b, "--search-page-delay", "0", "--visibility-lag", "-1ns", "--search-rate", "-1")
		if err != nil {
			return fmt.Errorf("backend %s: %w", b, err)
		}
		res.backends = append(res.backends, backendRun{name: b, bare: bare, plugin: plugin})
	}
	return nil
}

// searchConf is one bare client run: its page size, and whether the days
// are searched at once.
type searchConf struct {
	limit    int
	parallel bool
}

// searchBacklog starts a stand-in with the search backlog (args added),
// runs the bare client with each of confs, then drains the backlog with
// the plugin from Fluent Bit's start, drains times: the median run is
// returned. Fluent Bit takes a Go input's records once a second, so a run
// ends at the first callback after the search, up to a second later
// whatever the search's pace; the median of a few runs is the typical one.
func searchBacklog(c *config, authDir, pluginDir string, confs []searchConf, drains int, logw io.Writer, args ...string) ([]searchRun, *drainResult, error) {
	ctx := context.Background()
	span := time.Duration(c.searchDays * float64(24*time.Hour))
	start := time.Now().Add(-span)
	auth, err := startAuth(c.auth, filepath.Join(c.dir, authDir), append([]string{"--events", strconv.Itoa(c.searchN),
		"--days", strconv.FormatFloat(c.searchDays, 'f', -1, 64), "--seed", "3", "--export-unimplemented",
		"--search-page-delay", c.searchDelay.String()}, args...)...)
	if err != nil {
		return nil, nil, err
	}
	defer auth.stop()
	from := start.Add(-time.Minute).UTC().Truncate(time.Second)
	to := time.Now().Add(time.Minute).UTC()

	var runs []searchRun
	if len(confs) > 0 {
		clt, err := dialIdentity(ctx, auth.addr, auth.identity)
		if err != nil {
			return nil, nil, err
		}
		defer clt.Close()
		for _, r := range confs {
			s, err := bareSearch(ctx, clt, from, to, r.limit, r.parallel)
			if err != nil {
				return nil, nil, err
			}
			if s.n != int64(c.searchN) {
				return nil, nil, fmt.Errorf("bare search (%s) got %d events, want %d", s.label(), s.n, c.searchN)
			}
			runs = append(runs, s)
			progress("  bare search, %s: %d events in %d pages, %v: %.0f events/s", s.label(), s.n, s.pages, s.wall.Round(time.Millisecond), s.rate())
		}
	}
	// startHost fills in storage_dir and metrics_listen.
	props := c.pluginProps(auth)
	props["start_time"] = from.Format(time.RFC3339)
	props["batch"] = strconv.Itoa(c.searchBatch)
	var ds []*drainResult
	for i := 0; i < drains; i++ {
		p := maps.Clone(props)
		d, err := drainPlugin(c, auth, int64(c.searchN), filepath.Join(c.dir, fmt.Sprintf("%s-%d", pluginDir, i+1)), p, c.timeout, logw)
		if err != nil {
			return nil, nil, err
		}
		progress("  plugin: %s", d)
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].wall < ds[j].wall })
	d := ds[len(ds)/2]
	d.runs = len(ds)
	for _, x := range ds {
		d.walls = append(d.walls, x.wall)
	}
	return runs, d, nil
}

// table rows of the search section.
func (r *searchResult) rows(row func(what, result, target, met string)) {
	for _, s := range r.bare {
		row("search: bare teleport/api client, "+s.label(), fmt.Sprintf("%s (%s events in %.1f s)", rateStr(s.rate()), count(s.n), s.wall.Seconds()), "", "")
	}
	for _, b := range r.backends {
		for _, s := range b.bare {
			row("search, "+b.name+" backend: bare teleport/api client, "+s.label(), fmt.Sprintf("%s (%.1f s)", rateStr(s.rate()), s.wall.Seconds()), "", "")
		}
		p := b.plugin
		res := fmt.Sprintf("%s (%.1f s", rateStr(p.rate()), p.wall.Seconds())
		if p.runs > 1 {
			var ws []string
			for _, w := range p.walls {
				ws = append(ws, fmt.Sprintf("%.1f", w.Seconds()))
			}
			res += fmt.Sprintf("; median of %d runs: %s s", p.runs, strings.Join(ws, ", "))
		}
		row("search, "+b.name+" backend: plugin, from process start", res+")", "", "")
		best := b.best()
		ratio := p.rate() / best.rate()
		row("search, "+b.name+" backend: plugin / best bare client ("+best.label()+")", fmt.Sprintf("%.0f%%", 100*ratio), "≥ 80%", verdict(ratio >= 0.8 && !p.timedOut))
	}
	p := r.plugin
	if p == nil {
		return
	}
	res := fmt.Sprintf("%s (%s events in %.1f s; %s recording events alongside)", rateStr(p.rate()), count(p.n), p.wall.Seconds(), count(p.sessions))
	if p.timedOut {
		res = fmt.Sprintf("%s (timed out: %s of %s events in %.0f s)", rateStr(p.rate()), count(p.n), count(p.want), p.wall.Seconds())
	}
	if p.runs > 1 {
		var ws []string
		for _, w := range p.walls {
			ws = append(ws, fmt.Sprintf("%.1f", w.Seconds()))
		}
		res += fmt.Sprintf("; median of %d runs: %s s", p.runs, strings.Join(ws, ", "))
	}
	row(fmt.Sprintf("search: plugin in the Fluent Bit stand-in, batch %d, from process start", r.batch), res, "", "")
	if o := r.oldPlugin; o != nil {
		row("search: the previous plugin build (windows one after another, pages of batch)", fmt.Sprintf("%s (%s events in %.1f s)", rateStr(o.rate()), count(o.n), o.wall.Seconds()), "", "")
	}
	b := r.best()
	ratio := p.rate() / b.rate()
	row("search: plugin / best bare client ("+b.label()+")", fmt.Sprintf("%.0f%%", 100*ratio), "≥ 80%", verdict(ratio >= 0.8 && !p.timedOut))
	if q := r.sessPlugin; q != nil {
		row("search, the usual backlog with SSH sessions (recordings NotFound): bare client, "+r.sessBare.label(), fmt.Sprintf("%s (%.1f s)", rateStr(r.sessBare.rate()), r.sessBare.wall.Seconds()), "", "")
		row("search, the same backlog: plugin, from process start", fmt.Sprintf("%s (%.1f s; %.0f%% of that client)", rateStr(q.rate()), q.wall.Seconds(), 100*q.rate()/r.sessBare.rate()), "", "")
	}
	serial, ok := r.serial()
	if o := r.oldPlugin; o != nil {
		serial, ok = searchRun{n: o.n, wall: o.wall}, true
	}
	if ok {
		x := p.rate() / serial.rate()
		row("search: plugin / serial search at batch (before)", fmt.Sprintf("%.1f×", x), "≥ 3×", verdict(x >= 3 && !p.timedOut))
	}
}

func (r *searchResult) header() string {
	return fmt.Sprintf("search path: %s events over %s days, no SSH sessions (stand-in without the export API, every search call ≥ %v), batch %d",
		count(int64(r.n)), strings.TrimSuffix(strconv.FormatFloat(r.days, 'f', 1, 64), ".0"), r.delay, r.batch)
}
