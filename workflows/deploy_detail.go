package workflows

import (
	"errors"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/activities"
)

func checkDetail(r activities.ValidateResult) string {
	s := "material ok; server check " + string(r.ServerCheck)
	if r.Command != "" && r.ServerCheck != activities.CheckNone {
		s += " (" + r.Command + ")"
	}
	if r.Note != "" {
		s += ": " + r.Note
	}
	return s
}

// errMessage is the innermost useful message of an activity error.
func errMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Error()
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return "timed out (" + strings.ToLower(strings.TrimPrefix(te.TimeoutType().String(), "TIMEOUT_TYPE_")) + ")"
	}
	return err.Error()
}

func filesOf(files []activities.PlannedFile) string {
	var s []string
	for _, f := range files {
		s = append(s, f.Path)
	}
	return strings.Join(s, ", ")
}

func backupsOf(b []activities.Backup) string {
	if len(b) == 0 {
		return "none"
	}
	var s []string
	for _, f := range b {
		s = append(s, f.Backup)
	}
	return strings.Join(s, ", ")
}
