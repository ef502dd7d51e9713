// Command certctl is the operator's CLI: it starts deploys on Temporal and
// follows them, and runs the embedded default (`certctl dev`).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	_ "github.com/certctl/certctl/connectors/all"
)

// exitError carries an exit code: 1 for a failed outcome, 2 for input refused
// before anything started.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// invalid is exit 2: input refused before anything started; msg names the
// field.
func invalid(msg string) error { return &exitError{code: 2, msg: "invalid input: " + msg} }

func main() {
	root := newRoot()
	if err := root.Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, "certctl:", ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "certctl:", err)
		os.Exit(2) // cobra's own errors are bad flags: input refused
	}
}

// newRoot is certctl's command tree.
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "certctl",
		Short:         "Deploy certificates with Temporal: atomic, verified, rolled back on failure",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(deployCmd(), devCmd(), codecServerCmd())
	root.AddCommand(approvalsCmd(), renewCmd(), rolloutCmd(), setupCmd(), statusCmd(), historyCmd())
	tuneGC(root)
	return root
}
