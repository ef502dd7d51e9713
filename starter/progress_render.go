package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Progress modes of `certctl deploy --progress`.
const (
	progressAuto  = "auto"
	progressTTY   = "tty"
	progressPlain = "plain"
)

// progressMode resolves --progress: auto is tty when w is a terminal (and
// TERM is not "dumb"), plain otherwise.
func progressMode(flag string, w io.Writer) (string, error) {
	switch flag {
	case progressTTY, progressPlain:
		return flag, nil
	case progressAuto, "":
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb" {
			return progressTTY, nil
		}
		return progressPlain, nil
	}
	return "", fmt.Errorf("--progress: want auto, tty or plain, not %q", flag)
}

// renderer draws progress events.
type renderer interface {
	event(progressEvent)
	// line writes a line of its own (the outcome, say) below the progress.
	line(string)
	// finish stops drawing; nothing of the renderer's stays on the line.
	finish()
}

// stepText is a finished step's line, the same in plain and terminal
// output (and the same as before progress existed).
func stepText(e progressEvent) string {
	switch {
	case e.TimedOut:
		return fmt.Sprintf("  %-16s TIMED OUT %6d ms", e.Step, e.Ms)
	case e.Failed:
		return fmt.Sprintf("  %-16s FAILED %6d ms  %s", e.Step, e.Ms, oneLine(e.Error))
	}
	return fmt.Sprintf("  %-16s ok     %6d ms", e.Step, e.Ms)
}

// plainRenderer prints each step as it finishes, one line each: what a log
// or a pipe gets.
type plainRenderer struct{ w io.Writer }

func (r plainRenderer) event(e progressEvent) {
	if e.Event == "step_ended" {
		fmt.Fprintln(r.w, stepText(e))
	}
}
func (r plainRenderer) line(s string) { fmt.Fprintln(r.w, s) }
func (r plainRenderer) finish()       {}

// eventsRenderer prints every event as one JSON object a line.
type eventsRenderer struct{ enc *json.Encoder }

func newEventsRenderer(w io.Writer) eventsRenderer { return eventsRenderer{enc: json.NewEncoder(w)} }

func (r eventsRenderer) event(e progressEvent) { _ = r.enc.Encode(e) }
func (r eventsRenderer) line(string)           {}
func (r eventsRenderer) finish()               {}

// ttyRenderer is the terminal's view: the steps' lines as they finish, and
// below them one line rewritten in place (carriage return, erase line)
// with what the deploy does now and for how long: waiting for a worker,
// running on it, a step under way, the wait before the next verify
// attempt.
type ttyRenderer struct {
	mu    sync.Mutex
	w     io.Writer
	width int
	now   func() time.Time
	// phase says what happens now; nil: no spinner line.
	phase func(now time.Time) string
	// worker is the identity of the worker running the deploy.
	worker string
	// attempt is a failed verify attempt not yet drawn.
	attempt *progressEvent
	// lockSince is when the deploy began to wait for the lock.
	lockSince time.Time
	frame     int
	drawn     bool
	stop      chan struct{}
	done      chan struct{}
}

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

const eraseLine = "\r\033[K"

func newTTYRenderer(w io.Writer, width int, now func() time.Time) *ttyRenderer {
	if width <= 0 {
		width = 80
	}
	return &ttyRenderer{w: w, width: width, now: now}
}

// terminalWidth is w's width when it is a terminal, else 0.
func terminalWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil {
			return cols
		}
	}
	return 0
}

// start redraws the spinner every tick until finish.
func (r *ttyRenderer) start(tick time.Duration) {
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.done)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
				r.draw()
			}
		}
	}()
}

// draw rewrites the spinner line.
func (r *ttyRenderer) draw() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.phase == nil {
		return
	}
	text := spinnerFrames[r.frame%len(spinnerFrames)] + " " + terminalSafe(r.phase(r.now()))
	r.frame++
	if rs := []rune(text); len(rs) > r.width-1 {
		text = string(rs[:r.width-2]) + "…"
	}
	fmt.Fprint(r.w, eraseLine+text)
	r.drawn = true
}

func (r *ttyRenderer) line(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lineLocked(s)
}

func (r *ttyRenderer) lineLocked(s string) {
	if r.drawn {
		fmt.Fprint(r.w, eraseLine)
		r.drawn = false
	}
	fmt.Fprintln(r.w, s)
}

func (r *ttyRenderer) finish() {
	if r.stop != nil {
		close(r.stop)
		<-r.done
		r.stop = nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phase = nil
	if r.drawn {
		fmt.Fprint(r.w, eraseLine)
		r.drawn = false
	}
}

// since is t, or now when t (the server's clock) is ahead of this one.
func since(now, t time.Time) time.Duration { return max(now.Sub(t), 0) }

// elapsed is a duration as the spinner shows it: tenths below 10s, whole
// seconds above.
func elapsed(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// countdown is the whole seconds left until t, at least 0s.
func countdown(now, t time.Time) string {
	left := t.Sub(now)
	if left < 0 {
		left = 0
	}
	return (((left + time.Second - 1) / time.Second) * time.Second).String()
}

func (r *ttyRenderer) event(e progressEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at := e.Time
	if e.Event != "verify_attempt" && e.Event != "wait" {
		r.attempt = nil
	}
	switch e.Event {
	case "started":
		r.phase = func(now time.Time) string { return "starting " + e.WorkflowID + "  " + elapsed(since(now, at)) }
	case "waiting":
		r.phase = func(now time.Time) string {
			s := "waiting for a worker on " + e.TaskQueue + "  " + elapsed(since(now, at))
			if e.LimitMs > 0 {
				s += " / host_wait " + (time.Duration(e.LimitMs) * time.Millisecond).String()
			}
			return s
		}
	case "picked_up":
		r.worker = e.Worker
		r.running(at)
	case "step_started":
		r.phase = func(now time.Time) string { return e.Step + " on " + r.worker + "  " + elapsed(since(now, at)) }
	case "step_ended":
		r.lineLocked(stepText(e))
		r.running(at)
	case "verify_attempt":
		// A failed attempt gets a line when a next attempt follows (a
		// wait); the last one is the step's own FAILED line.
		if e.Failed {
			r.attempt = &e
		}
	case "wait":
		if a := r.attempt; a != nil && e.Reason == waitVerifyBackoff {
			r.lineLocked(fmt.Sprintf("  %-16s attempt %d/%d FAILED %6d ms  %s", a.Step, a.Attempt, a.Attempts, a.Ms, oneLine(a.Error)))
		}
		next := at.Add(time.Duration(e.WaitMs) * time.Millisecond)
		switch e.Reason {
		case waitVerifyBackoff:
			r.phase = func(now time.Time) string {
				return fmt.Sprintf("%s attempt %d of %d failed — next attempt in %s", e.Step, e.Attempt, e.Attempts, countdown(now, next))
			}
		case waitLock:
			if r.lockSince.IsZero() {
				r.lockSince = at
			}
			first := r.lockSince
			r.phase = func(now time.Time) string {
				return "lock: waiting for " + strings.Join(e.WaitingFor, ", ") + "  " + elapsed(since(now, first))
			}
		}
	}
}

func (r *ttyRenderer) running(at time.Time) {
	r.phase = func(now time.Time) string { return "running on " + r.worker + "  " + elapsed(since(now, at)) }
}
