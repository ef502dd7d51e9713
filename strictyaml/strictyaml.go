// Package strictyaml reads the files operators write (targets, profiles):
// exactly one YAML document, unknown fields refused, and malformed input
// refused rather than crashing the reader.
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"
)

// Errors a caller turns into its own message.
var (
	ErrEmpty      = errors.New("file is empty")
	ErrMultiDoc   = errors.New("holds more than one YAML document")
	ErrUnreadable = errors.New("is not YAML the decoder can read")
)

// Describe turns Decode's own refusals into the message for a file of kind
// what ("target", "profile"); ok is false for yaml.v3's field errors, which
// the caller maps to field names.
func Describe(err error, what string) (msg string, ok bool) {
	switch {
	case errors.Is(err, ErrMultiDoc):
		return fmt.Sprintf("%v: give one %s per file", err, what), true
	case errors.Is(err, ErrEmpty), errors.Is(err, ErrUnreadable), errors.Is(err, ErrTooLarge):
		return err.Error(), true
	}
	return "", false
}

// Decode reads the single YAML document in data into v. Other decode errors
// (unknown fields, wrong types) are yaml.v3's own, for the caller to map to
// field names.
func Decode(data []byte, v any) (err error) {
	defer func() {
		// yaml.v3 panics on some malformed input (such as "{{0},<<}").
		if r := recover(); r != nil {
			err = fmt.Errorf("%w (%v)", ErrUnreadable, r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			return ErrEmpty
		}
		return err
	}
	var more yaml.Node
	if err := dec.Decode(&more); err != io.EOF {
		// An empty trailing document ("---" at the end) is harmless.
		if err != nil || len(more.Content) != 1 || more.Content[0].ShortTag() != "!!null" {
			return ErrMultiDoc
		}
	}
	return nil
}
