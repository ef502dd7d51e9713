package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
)

// ErrPlaintextKey is the refusal of an unencrypted payload that carries a
// private key: its input was started without the codec, so the key already
// sits in the history in the clear.
var ErrPlaintextKey = errors.New("codec: refusing an unencrypted payload that holds a private key (material.key_pem, or a PEM private key in any field): " +
	"start deploys through certctl, or with `temporal workflow start … --codec-endpoint URL` (see `certctl codec-server`), " +
	"and treat that key as exposed: replace it")

// keyField is the JSON name of the material's key. Go's encoding/json
// matches field names without regard to case (Unicode simple folding, so
// the Kelvin sign stands for "k"): so does the guard.
const keyField = "key_pem"

// pemKeyMarker is what every PEM private key block's BEGIN line holds.
var pemKeyMarker = []byte("PRIVATE KEY")

// holdsPrivateKey reports whether an unencrypted payload carries a private
// key. A payload that is JSON (what the temporal CLI and the default
// converter write) is judged by its structure: any non-empty key_pem field
// at any depth, or any string or name that, unescaped, holds a PEM private
// key; JSON escapes (\u0050RIVATE KEY) change nothing. Anything else is
// judged by its bytes.
func holdsPrivateKey(p *commonpb.Payload) bool {
	data := p.GetData()
	var v any
	if json.Unmarshal(data, &v) == nil {
		return jsonHoldsKey(v)
	}
	return bytes.Contains(data, pemKeyMarker)
}

func jsonHoldsKey(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.Contains(x, string(pemKeyMarker))
	case []any:
		for _, e := range x {
			if jsonHoldsKey(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if strings.EqualFold(k, keyField) && e != nil && e != "" {
				return true
			}
			if jsonHoldsKey(k) || jsonHoldsKey(e) {
				return true
			}
		}
	}
	return false
}
