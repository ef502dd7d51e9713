package target

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Mode is a file permission written the way people write it: 0640. Text is
// always read as octal, in YAML and in JSON ("0640"), so "640" cannot be
// mistaken for decimal.
type Mode uint32

// Perm returns the os.FileMode.
func (m Mode) Perm() os.FileMode { return os.FileMode(m) & os.ModePerm }

func (m Mode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// MarshalJSON writes "0640".
func (m Mode) MarshalJSON() ([]byte, error) { return json.Marshal(m.String()) }

// UnmarshalJSON reads "0640" (octal text) or a JSON number (its value).
func (m *Mode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return m.parse(s)
	}
	var n uint32
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("mode must be a string like \"0640\"")
	}
	*m = Mode(n)
	return nil
}

// MarshalYAML writes 0640 (a string, so it reads back as octal).
func (m Mode) MarshalYAML() (any, error) { return m.String(), nil }

// UnmarshalYAML reads 0640, "0640" or 0o640 as octal.
func (m *Mode) UnmarshalYAML(n *yaml.Node) error { return at(n, m.parse(n.Value)) }

func (m *Mode) parse(s string) error {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return fmt.Errorf("invalid mode %q: want octal like 0640", s)
	}
	*m = Mode(v)
	return nil
}

// shellMeta are the characters a shell would interpret. Commands are run as
// argument vectors, never through a shell, so a string holding any of these is
// refused rather than silently meaning something else.
const shellMeta = "|&;<>()$`\\\"'*?[]#~{}!\n\r"

// Command is an argument vector. In a target file it is either a list of
// arguments or a string split on spaces; a string with shell metacharacters
// is refused.
type Command []string

// ParseCommand splits s into arguments, refusing shell metacharacters.
func ParseCommand(s string) (Command, error) {
	if i := strings.IndexAny(s, shellMeta); i >= 0 {
		return nil, fmt.Errorf("command %q contains the shell metacharacter %q; commands run without a shell: give an argument list instead", s, s[i])
	}
	if strings.ContainsRune(s, 0) {
		return nil, fmt.Errorf("command contains a NUL byte")
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil, nil
	}
	return Command(f), nil
}

func (c *Command) fromList(list []string) error {
	for _, a := range list {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("command argument contains a NUL byte")
		}
	}
	if len(list) > 0 && list[0] == "" {
		return fmt.Errorf("command's program is empty")
	}
	if len(list) == 0 {
		list = nil // an empty list is no command, as an empty string is
	}
	*c = Command(list)
	return nil
}

// UnmarshalJSON reads a string or a list of strings.
func (c *Command) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := ParseCommand(s)
		*c = v
		return err
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("command must be a string or a list of strings")
	}
	return c.fromList(list)
}

// UnmarshalYAML reads a string or a list of strings.
func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		v, err := ParseCommand(n.Value)
		*c = v
		return at(n, err)
	case yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			return at(n, err)
		}
		return at(n, c.fromList(list))
	}
	return at(n, fmt.Errorf("command must be a string or a list of strings"))
}

// nodeError is an error of one YAML value; Parse turns its position into the
// name of the field.
type nodeError struct {
	line, col int
	err       error
}

func (e *nodeError) Error() string { return e.err.Error() }

func at(n *yaml.Node, err error) error {
	if err == nil {
		return nil
	}
	return &nodeError{line: n.Line, col: n.Column, err: err}
}

func (c Command) String() string { return strings.Join(c, " ") }

// Duration reads "10s"-style strings in YAML and JSON.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts "10s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration must be a string like \"10s\"")
		}
		*d = Duration(n)
		return nil
	}
	return d.set(s)
}

// MarshalYAML writes "10s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML accepts "10s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error { return at(n, d.set(n.Value)) }

func (d *Duration) set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q", s)
	}
	*d = Duration(v)
	return nil
}
