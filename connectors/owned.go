package connectors

import "github.com/certctl/certctl/target"

// Owned is embedded by a connector whose typed config T holds its own
// fields of target_config: it makes the connector an Owner (Register
// records T) and reads a target's fields as T.
type Owned[T any] struct {
	Name string // the target_type, for errors
}

// Own is T's zero value.
func (o Owned[T]) Own() any {
	var zero T
	return zero
}

// Of is cfg's own fields as T, decoded strictly and validated
// (target.DecodeOwn).
func (o Owned[T]) Of(cfg target.Config) (T, error) {
	return target.DecodeOwn[T](cfg, o.Name)
}
