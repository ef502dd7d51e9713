package contract

import (
	"errors"
	"fmt"
)

// FieldError names the field of an operator's input (a target, a profile,
// the material, an issuer's settings) that is wrong, and what is wrong with
// it. Every package that checks such input returns it; Invalid turns it into
// the InvalidInput ApplicationError.
type FieldError struct {
	Field string // "target_config.cert_path", "issuer.ca_key", "material.chain_pem"
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Fieldf is a FieldError with a formatted message.
func Fieldf(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// InvalidField is err as InvalidInput: a FieldError in its chain keeps its
// field; any other error is about the field fallback.
func InvalidField(err error, fallback string) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return Invalid(fe.Field, fe.Msg)
	}
	return Invalid(fallback, err.Error())
}
