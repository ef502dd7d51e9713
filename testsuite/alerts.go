package testsuite

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// AlertRules is a Prometheus rule file (docs/alerts.yml), the fields
// promtool checks that certctl's sample uses.
type AlertRules struct {
	Groups []struct {
		Name  string      `yaml:"name"`
		Rules []AlertRule `yaml:"rules"`
	} `yaml:"groups"`
}

// AlertRule is one alerting rule.
type AlertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// LoadAlertRules reads a rule file, refusing a field it does not know.
func LoadAlertRules(path string) (AlertRules, error) {
	var r AlertRules
	f, err := os.Open(path)
	if err != nil {
		return r, err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// MetricNames are the metric names an expression uses: its identifiers
// that start with one of prefixes, outside quoted strings (label values).
func MetricNames(expr string, prefixes ...string) []string {
	var out []string
	var word strings.Builder
	flush := func() {
		w := word.String()
		word.Reset()
		for _, p := range prefixes {
			if strings.HasPrefix(w, p) {
				out = append(out, w)
				return
			}
		}
	}
	var quote rune
	for _, c := range expr {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			flush()
			quote = c
		case c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			word.WriteRune(c)
		default:
			flush()
		}
	}
	flush()
	return out
}
