package contract

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The operator reference and the CLI say the same: each deploy outcome has
// a row in docs/operator.md "Outcomes and what to do", and every clause of
// its NextAction is in that row's "what to do" column (code spans and links
// read as their text, case aside).
func TestNextActionsAgreeWithTheOperatorReference(t *testing.T) {
	b, err := os.ReadFile("../docs/operator.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "\n## Outcomes and what to do")
	if start < 0 {
		t.Fatal(`docs/operator.md has no "## Outcomes and what to do"`)
	}
	section := doc[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	link := regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	rows := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| `") || len(cells) < 4 {
			continue
		}
		outcome := strings.Trim(cells[0], "| `")
		todo := strings.TrimSuffix(strings.Join(cells[3:], " | "), " |")
		todo = link.ReplaceAllString(strings.ReplaceAll(todo, "`", ""), "$1")
		rows[outcome] = strings.ToLower(todo)
	}
	for _, o := range DeployOutcomes() {
		next := NextAction(o)
		if next == "" {
			t.Errorf("%s has no NextAction", o)
			continue
		}
		row, ok := rows[o]
		if !ok {
			t.Errorf("%s has no row in docs/operator.md \"Outcomes and what to do\"", o)
			continue
		}
		for _, clause := range strings.Split(next, "; ") {
			if !strings.Contains(row, strings.ToLower(clause)) {
				t.Errorf("%s: the operator reference's \"what to do\" does not say %q (NextAction %q)\n  row: %s", o, clause, next, row)
			}
		}
	}
	for o := range rows {
		if !slices.Contains(DeployOutcomes(), o) {
			t.Errorf("docs/operator.md has a row for %s, which DeployOutcomes does not list", o)
		}
	}
}

func TestNextActionOfAnUnknownOutcomeIsEmpty(t *testing.T) {
	if got := NextAction("NoSuchOutcome"); got != "" {
		t.Fatalf("NextAction(NoSuchOutcome) = %q", got)
	}
}
