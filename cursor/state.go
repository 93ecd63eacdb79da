// Package cursor holds the plugin's durable state: where the export resumes.
// The state is written atomically (temp file, fsync, rename, fsync of the
// directory), versioned, 0600 in a 0700 directory, and guarded by an
// exclusive lock so two processes never share one storage directory.
package cursor

import "time"

// Format identifies our state files; a file without it is foreign.
const Format = "teleport-fluent-bit/cursor"

// Version is the current state layout version. Version 2 added the search
// path's parallel windows and the ids handed over within the late
// tolerance; a version 1 state loads as it is (its search position resumes).
// Version 3 keeps a day's finished chunks as hashes (done_set: days stay
// open for export_late_horizon, so their lists must stay small) and lists
// the chunks set aside; a version 1 or 2 state's done chunk names are
// hashed into done_set on load (migrate).
const Version = 3

// Modes of export.
const (
	ModeExport = "export" // bulk export API (GetEventExportChunks / ExportUnstructuredEvents)
	ModeSearch = "search" // legacy SearchUnstructuredEvents
)

// State is everything needed to resume after a restart or a crash.
type State struct {
	Format    string    `json:"format"`
	Version   int       `json:"version"`
	StartTime time.Time `json:"start_time"` // fixed on the first run
	Mode      string    `json:"mode,omitempty"`
	Export    *Export   `json:"export,omitempty"`
	Search    *Search   `json:"search,omitempty"`
	// Sessions are the recordings announced by a handed-over audit event
	// and not yet exported to their end. A finished or given-up session is
	// removed, so this holds only the work in progress.
	Sessions map[string]*Session `json:"sessions,omitempty"`
	// GivenUp are the recordings given up, newest last, at most MaxGivenUp:
	// what an operator re-sends with `teleport-fluent-bit export --session`.
	GivenUp []GivenUpSession `json:"given_up,omitempty"`
	// GivenUpDropped counts the given-up recordings older than those
	// GivenUp keeps (their warnings are in the log).
	GivenUpDropped int64 `json:"given_up_dropped,omitempty"`
	// SetAside are the export chunks set aside after failing for a reason
	// retrying does not fix, newest last, at most MaxSetAside: what an
	// operator re-exports with `teleport-fluent-bit export --chunk`.
	SetAside []SetAsideChunk `json:"set_aside,omitempty"`
	// SetAsideDropped counts the set-aside chunks older than those SetAside
	// keeps (their errors are in the log).
	SetAsideDropped int64 `json:"set_aside_dropped,omitempty"`
	// UploadsSeen is set once the cluster has emitted a session.upload
	// event: from then on session.end no longer announces recordings, so
	// no session is exported twice.
	UploadsSeen bool `json:"uploads_seen,omitempty"`
	// Locking is the failed-login counting of lock_enabled.
	Locking *Locking `json:"locking,omitempty"`
}

// Locking keeps failed logins per user, so counts survive a restart.
type Locking struct {
	// Failures are the times of recent failed logins per user (only those
	// within lock_period are kept).
	Failures map[string][]time.Time `json:"failures,omitempty"`
	// Pending are users over the limit whose lock is not placed yet, with the
	// time the limit was reached.
	Pending map[string]time.Time `json:"pending,omitempty"`
}

// Session is the progress of one session recording.
type Session struct {
	// Next is the index of the next recording event to export.
	Next int64 `json:"next"`
	// Announced is the time of the audit event that announced the recording
	// (session.upload, or session.end on servers without it): a recording
	// still missing long after it is given up.
	Announced time.Time `json:"announced"`
	// ByEnd marks a recording announced by session.end only.
	ByEnd bool `json:"by_end,omitempty"`
	// AwaitUpload marks a session.end-only announcement on a cluster that
	// emits session.upload: its recording is tried only after a longer
	// wait, unless its session.upload takes it over before.
	AwaitUpload bool `json:"await_upload,omitempty"`
}

// MaxGivenUp bounds State.GivenUp.
const MaxGivenUp = 100

// GivenUpSession is a recording given up: not (fully) exported.
type GivenUpSession struct {
	SessionID string    `json:"session_id"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
	// Next is the index of the first recording event not exported (events
	// before it were handed over).
	Next int64 `json:"next"`
}

// Export is the bulk export position.
type Export struct {
	// NextDay is the first UTC day ("2006-01-02") not yet fully exported.
	NextDay string `json:"next_day"`
	// Days holds per-chunk progress for the days being exported (NextDay and
	// later); a finished day is removed, so this never grows without bound.
	Days map[string]*Day `json:"days,omitempty"`
}

// Day is the progress of one UTC day.
type Day struct {
	// Cursors are resumable positions inside chunks not yet finished.
	Cursors map[string]string `json:"cursors,omitempty"`
	// Done lists chunks exported to their end: the version 2 form, hashed
	// into DoneSet when a state is loaded; never written.
	Done map[string]bool `json:"done,omitempty"`
	// DoneSet holds the chunks exported to their end (or set aside).
	DoneSet ChunkSet `json:"done_set,omitempty"`
}

// MaxDayChunks bounds a day's DoneSet (8 bytes each): Athena writes one
// chunk per consumer batch and date, at most one a minute unless a batch
// reaches 20,000 events, so a real day has a few thousand.
const MaxDayChunks = 200_000

// MaxSetAside bounds State.SetAside.
const MaxSetAside = 100

// SetAsideChunk is an export chunk set aside: not (fully) exported.
type SetAsideChunk struct {
	Day    string    `json:"day"`
	Chunk  string    `json:"chunk"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	// Cursor is where the chunk stood (events before it were handed over);
	// "" when none of it was.
	Cursor string `json:"cursor,omitempty"`
}

// Search is the search path's position. Everything before WindowStart is
// exported. Backlog windows from there on are searched in parallel, each
// resumable on its own (Windows); once caught up, the last
// search_late_tolerance before the newest poll is read again on every poll,
// and Seen holds what was handed over from it.
type Search struct {
	// WindowStart is the frontier: every event with an earlier time was
	// exported (or was stored later than the tolerance).
	WindowStart time.Time `json:"window_start"`
	// Key and LastID are a version 1 position inside the window starting at
	// WindowStart (pages of `batch` events): the page starting at Key, after
	// the event LastID. They are resumed as the first window and cleared.
	Key    string `json:"key,omitempty"`
	LastID string `json:"last_id,omitempty"`
	// Windows are the backlog windows from WindowStart on that are being
	// searched or are done while an earlier one is not, in time order, none
	// overlapping; a window the frontier passes is removed.
	Windows []*Window `json:"windows,omitempty"`
	// Seen are the events handed over with a time at or after WindowStart,
	// so reading that span again skips them; at most MaxSeen.
	Seen []Seen `json:"seen,omitempty"`
}

// Window is the progress of one backlog window [Start, End).
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Key is the start key of the page holding LastID ("" for the first
	// page), read with Limit events per page; on resume that page is read
	// again with the same limit and the events up to LastID are skipped.
	Key    string `json:"key,omitempty"`
	LastID string `json:"last_id,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	Done   bool   `json:"done,omitempty"`
}

// Seen is one event handed over within the late tolerance.
type Seen struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
}

// Bounds of a search position, checked when a state is loaded or saved.
const (
	MaxWindows = 4096
	// MaxSeen bounds the ids kept for the late tolerance (about 80 bytes
	// each in the file): the source shortens the tolerance it re-reads
	// rather than keep more.
	MaxSeen = 200_000
	// MaxSearchLimit is the largest page Teleport serves
	// (defaults.EventsMaxIterationLimit).
	MaxSearchLimit = 10000
)

// New returns the state of a first run starting at start.
func New(start time.Time) *State {
	return &State{Format: Format, Version: Version, StartTime: start.UTC()}
}

// normalize keeps every time in UTC, so the file reads the same wherever it
// was written.
func (st *State) normalize() {
	st.StartTime = st.StartTime.UTC()
	if s := st.Search; s != nil {
		s.WindowStart = s.WindowStart.UTC()
		for _, w := range s.Windows {
			if w != nil {
				w.Start, w.End = w.Start.UTC(), w.End.UTC()
			}
		}
		for i := range s.Seen {
			s.Seen[i].Time = s.Seen[i].Time.UTC()
		}
	}
	for _, ss := range st.Sessions {
		ss.Announced = ss.Announced.UTC()
	}
	for i := range st.GivenUp {
		st.GivenUp[i].At = st.GivenUp[i].At.UTC()
	}
	for i := range st.SetAside {
		st.SetAside[i].At = st.SetAside[i].At.UTC()
	}
	if l := st.Locking; l != nil {
		for _, ts := range l.Failures {
			for i := range ts {
				ts[i] = ts[i].UTC()
			}
		}
		for u, t := range l.Pending {
			l.Pending[u] = t.UTC()
		}
	}
}
