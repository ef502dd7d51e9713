package strictyaml

import (
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge is a file over the size its kind allows; Describe words it.
var ErrTooLarge = errors.New("file is larger")

// Read reads a whole file of at most max bytes from r.
func Read(r io.Reader, max int) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > max {
		return nil, fmt.Errorf("%w than %d bytes", ErrTooLarge, max)
	}
	return data, nil
}
