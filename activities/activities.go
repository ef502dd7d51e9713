package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/safefs"
	"github.com/certctl/certctl/sshfs"
)

// Activities are the deploy steps. Register a *Activities with a worker.
type Activities struct {
	// Now is the clock for the validity-window check; nil means time.Now.
	Now func() time.Time
	// Client is the workflow worker's own client, for EarlierRuns (a closed
	// approval request stays closed).
	Client client.Client
	// StateDir lists where this host staged files (see SweepTemps); empty
	// means StateDir() from the environment.
	StateDir string
	// SSH is the connection pool of agentless SSH targets; nil means
	// sshfs.Default (one pool per worker process).
	SSH *sshfs.Pool
}

func (a *Activities) stateDir() string {
	if a != nil && a.StateDir != "" {
		return a.StateDir
	}
	return StateDir()
}

func (a *Activities) now() time.Time {
	if a != nil && a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// logFor is the activity's logger, or a silent one outside an activity.
func logFor(ctx context.Context) log.Logger {
	if activity.IsActivity(ctx) {
		return activity.GetLogger(ctx)
	}
	return log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// invalid turns a target or material error into InvalidInput.
func invalid(err error) error {
	return contract.InvalidField(err, "target")
}

func concurrent(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), contract.ConcurrentChange, nil)
}

func mismatch(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), contract.PlanMismatch, nil)
}

// insecure turns a safefs.InsecureError into InsecurePath; other errors are
// returned as they are.
func insecure(err error) error {
	var ie *safefs.InsecureError
	if errors.As(err, &ie) {
		return temporal.NewNonRetryableApplicationError(err.Error(), contract.InsecurePath, nil, ie.Dir)
	}
	return err
}

// wrapf says which file an error is about; a typed (application) error is
// returned as it is, so its type reaches the workflow.
func wrapf(err error, format string, args ...any) error {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return err
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// errMessage is an application error's message, or err's.
func errMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Message()
	}
	return err.Error()
}
