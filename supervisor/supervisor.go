// Package supervisor is the process a host worker runs each validate and
// reload command under: its process group's leader, which kills the whole
// group when the worker dies or asks it to stop (activities/exec.go starts
// it). It is the worker's own binary started again with CERTCTL_SUPERVISE=1;
// this package's init takes over before main.
//
// It imports only the standard library on purpose (and stagedview, which
// holds to the same rule), and not even os/exec. Go initializes, at each
// step, the first package by import path whose imports are all ready, so
// one import that sorts late holds this init back behind every ready
// package sorting before it: with os/exec (its path/filepath, "p") that was
// 159 inits, the Temporal API's, protobuf's and client-go's among them, and
// ~7.5 ms of CPU a start; with os.StartProcess, ~80 small ones (up to
// encoding/json) and ~4 ms (perf stat; TestSupervisorInitsBeforeTheHeavyPackages
// reads GODEBUG=inittrace=1). A deploy runs two commands. Keep it that way.
package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/certctl/certctl/stagedview"
)

// EnvVar makes this binary a supervisor (see init); the spec comes on its
// stdin, so no environment size limit applies to it.
const EnvVar = "CERTCTL_SUPERVISE"

// maxSpec bounds the spec a supervisor reads.
const maxSpec = 4 << 20

func init() {
	if os.Getenv(EnvVar) == "1" {
		os.Exit(supervise(os.Stdin))
	}
}

// Spec is what the supervisor runs.
type Spec struct {
	Path string   `json:"path"`
	Args []string `json:"args"`
	// Env is the command's environment; nil means the supervisor's own
	// without EnvVar.
	Env []string `json:"env,omitempty"`
	// Binds run the command in the staged view: a private mount namespace
	// with each bind mounted (stagedview.Enter), Path resolved inside it.
	Binds []stagedview.Bind `json:"binds"`
	// Parent is the worker's pid: a supervisor that finds another parent
	// (the worker died before it was ready) runs nothing.
	Parent int `json:"parent"`
}

// Status is what the supervisor reports on fd 3.
type Status struct {
	StartError string `json:"start_error,omitempty"`
	Exit       int    `json:"exit"`
	Signal     int    `json:"signal,omitempty"`
}

// StatusFD is the descriptor the supervisor reports its Status on.
const StatusFD = 3

// supervise is the supervisor's main: it is its process group's leader,
// starts the command in the group, and kills the whole group when the worker
// dies (SIGTERM from PR_SET_PDEATHSIG) or when it is told to stop.
func supervise(specIn io.Reader) int {
	// The command's PR_SET_PDEATHSIG fires when the thread that forked it
	// exits: keep this goroutine on its thread for the command's lifetime.
	runtime.LockOSThread()
	status := os.NewFile(StatusFD, "status")
	syscall.CloseOnExec(StatusFD)
	report := func(st Status) int {
		b, _ := json.Marshal(st)
		if status != nil {
			_, _ = status.Write(b)
		}
		return 0
	}
	var sp Spec
	specJSON, err := io.ReadAll(io.LimitReader(specIn, maxSpec))
	if err == nil {
		err = json.Unmarshal(specJSON, &sp)
	}
	if err != nil || len(sp.Args) == 0 {
		return report(Status{StartError: fmt.Sprintf("certctl supervisor: bad spec: %v", err)})
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if os.Getppid() != sp.Parent {
		return report(Status{StartError: "certctl supervisor: the worker is gone"})
	}
	env := sp.Env
	if env == nil {
		env = WithoutEnv(os.Environ(), EnvVar)
	}
	path := sp.Path
	if sp.Binds != nil { // a view, even of no binds (JSON: "binds": [])
		// This goroutine is locked to its thread (above) and starts the
		// command from it: the command inherits the thread's view.
		var err error
		path, err = stagedview.Enter(sp.Binds, sp.Path)
		var f *stagedview.Failure
		switch {
		case errors.As(err, &f) && f.Unavailable:
			return report(Status{StartError: err.Error()})
		case errors.As(err, &f):
			fmt.Fprintln(os.Stderr, err)
			return report(Status{Exit: f.Exit})
		case err != nil:
			return report(Status{StartError: err.Error()})
		}
	}
	// os.StartProcess, not os/exec: see the package comment.
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return report(Status{StartError: err.Error()})
	}
	proc, err := os.StartProcess(path, sp.Args, &os.ProcAttr{
		Dir:   "/",
		Env:   withoutSecrets(env),
		Files: []*os.File{devNull, os.Stdout, os.Stderr},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	devNull.Close()
	if err != nil {
		return report(Status{StartError: err.Error()})
	}
	type waited struct {
		ps  *os.ProcessState
		err error
	}
	done := make(chan waited, 1)
	go func() {
		ps, err := proc.Wait()
		done <- waited{ps, err}
	}()
	var w waited
	select {
	case <-stop:
		_ = syscall.Kill(-syscall.Getpgrp(), syscall.SIGKILL)
		return 1
	case w = <-done:
	}
	if w.err != nil {
		return report(Status{StartError: w.err.Error()})
	}
	ws, _ := w.ps.Sys().(syscall.WaitStatus)
	st := Status{Exit: w.ps.ExitCode()}
	if ws.Signaled() {
		st.Signal = int(ws.Signal())
	}
	return report(st)
}

// secretEnv are the prefixes of the worker's own credentials: the codec's
// keys and token and the Temporal connection's (TEMPORAL_API_KEY,
// TEMPORAL_TLS_*). A validate or reload command never needs them, and a
// command that prints its environment must not print them.
var secretEnv = []string{"CERTCTL_CODEC_", "TEMPORAL_"}

// withoutSecrets is env less the variables secretEnv names.
func withoutSecrets(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		secret := false
		for _, p := range secretEnv {
			if strings.HasPrefix(e, p) {
				secret = true
			}
		}
		if !secret {
			out = append(out, e)
		}
	}
	return out
}

// WithoutEnv is env less the variable name.
func WithoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}
