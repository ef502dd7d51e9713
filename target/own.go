package target

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// A connector's own fields live in the same flat target_config object as the
// common ones; its typed config (a struct whose json and yaml tags name
// them) is registered here under its target_type, and the decoders of
// Target read them into it strictly: a field the target's connector does not
// read is refused, naming the connectors that do.

var (
	ownMu    sync.RWMutex
	ownTypes = map[string]reflect.Type{} // nil: the connector has no own fields
)

// RegisterOwn records that target_type's own fields of target_config are
// those of zero, a struct value (nil: it has none). connectors.Register
// calls it.
func RegisterOwn(targetType string, zero any) {
	var t reflect.Type
	if zero != nil {
		if t = reflect.TypeOf(zero); t.Kind() != reflect.Struct {
			panic(fmt.Sprintf("target.RegisterOwn(%q): %T is not a struct", targetType, zero))
		}
	}
	ownMu.Lock()
	defer ownMu.Unlock()
	ownTypes[targetType] = t
}

func ownType(targetType string) (t reflect.Type, registered bool) {
	ownMu.RLock()
	defer ownMu.RUnlock()
	t, registered = ownTypes[targetType]
	return t, registered
}

// ownField is the name of field f in target_config ("" for none).
func ownField(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// refuseOwn is the error for a field of target_config that targetType's
// connector does not read.
func refuseOwn(targetType, name string) error {
	ownMu.RLock()
	var readers []string
	for kind, t := range ownTypes {
		if t == nil {
			continue
		}
		for i := 0; i < t.NumField(); i++ {
			if ownField(t.Field(i)) == name {
				readers = append(readers, kind)
			}
		}
	}
	ownMu.RUnlock()
	sort.Strings(readers)
	if len(readers) > 0 {
		return fieldErr("target_config."+name, "%s is not used by %s: only %s reads it", name, targetType, strings.Join(readers, ", "))
	}
	return fieldErr("target_config."+name, "%s is not a field of target_config for %s: check its spelling", name, targetType)
}

// commonJSON is the set of target_config's common fields, by JSON name.
var commonJSON = func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		if n := ownField(t.Field(i)); n != "" {
			m[n] = true
		}
	}
	return m
}()

// DecodeOwn returns the target's own fields as T, its connector's typed
// config (targetType names the connector, for errors), checked by T's
// Validate when it has one. A field T does not have is refused, naming the
// connectors that read it. With T struct{} it refuses any own field.
func DecodeOwn[T any](c Config, targetType string) (T, error) {
	var v T
	switch o := c.Own.(type) {
	case nil:
		return v, nil
	case *T:
		if o != nil {
			v = *o
		}
	case T:
		v = o
	case json.RawMessage:
		if err := decodeOwnJSON(o, &v, targetType); err != nil {
			return v, err
		}
	default:
		// Another connector's typed config: refuse the first field it sets.
		rv := reflect.Indirect(reflect.ValueOf(o))
		if rv.Kind() == reflect.Struct {
			for i := 0; i < rv.NumField(); i++ {
				if n := ownField(rv.Type().Field(i)); n != "" && !rv.Field(i).IsZero() {
					return v, refuseOwn(targetType, n)
				}
			}
			return v, nil
		}
		return v, fieldErr("target_config", "holds %T, not the fields of %s", o, targetType)
	}
	if val, ok := any(&v).(interface{ Validate() error }); ok {
		return v, val.Validate()
	}
	return v, nil
}

// decodeOwnJSON decodes the own fields raw into v strictly.
func decodeOwnJSON(raw json.RawMessage, v any, targetType string) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return fieldErr("target_config", "%v", err)
	}
	known := map[string]bool{}
	if t := reflect.TypeOf(v).Elem(); t.Kind() == reflect.Struct {
		for i := 0; i < t.NumField(); i++ {
			known[ownField(t.Field(i))] = true
		}
	}
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !known[n] {
			return refuseOwn(targetType, n)
		}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fieldErr("target_config", "%v", err)
	}
	return nil
}

// plainConfig is Config without its methods, for the default encodings.
type plainConfig Config

// MarshalJSON writes the common fields and the connector's own in one flat
// object, the own fields where Config declares Own (before reload_signal
// and pid_file), so a target's JSON reads as before connectors owned them.
func (c Config) MarshalJSON() ([]byte, error) {
	common, err := json.Marshal(plainConfig(c))
	if err != nil {
		return nil, err
	}
	if c.Own == nil {
		return common, nil
	}
	own, err := json.Marshal(c.Own)
	if err != nil {
		return nil, err
	}
	own = bytes.TrimSpace(own)
	if len(own) < 2 || own[0] != '{' {
		return nil, fmt.Errorf("target_config: own fields %T do not encode as an object", c.Own)
	}
	inner := own[1 : len(own)-1]
	if len(bytes.TrimSpace(inner)) == 0 {
		return common, nil
	}
	// A key in common's output is the only place `,"reload_signal":`
	// occurs: inside a string the quotes are escaped.
	at := len(common) - 1
	for _, k := range []string{`,"reload_signal":`, `,"pid_file":`} {
		if i := bytes.Index(common, []byte(k)); i >= 0 {
			at = i
			break
		}
	}
	out := append([]byte{}, common[:at]...)
	out = append(append(append(out, ','), inner...), common[at:]...)
	return out, nil
}

// UnmarshalJSON reads the common fields; the rest are kept as JSON in Own
// until Target's UnmarshalJSON, knowing target_type, decodes them.
func (c *Config) UnmarshalJSON(b []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	common, rest := map[string]json.RawMessage{}, map[string]json.RawMessage{}
	for k, v := range all {
		if commonJSON[k] {
			common[k] = v
		} else {
			rest[k] = v
		}
	}
	cb, err := json.Marshal(common)
	if err != nil {
		return err
	}
	var p plainConfig
	if err := json.Unmarshal(cb, &p); err != nil {
		return err
	}
	*c = Config(p)
	if len(rest) > 0 {
		raw, err := json.Marshal(rest)
		if err != nil {
			return err
		}
		c.Own = json.RawMessage(raw)
	}
	return nil
}

// UnmarshalJSON decodes a target; the connector's own fields become its
// typed config when target_type's connector is registered and they decode
// strictly. Otherwise they stay JSON, for DecodeOwn (the connector's Check)
// to refuse: a payload never fails to decode over a field.
func (t *Target) UnmarshalJSON(b []byte) error {
	type plain Target
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*t = Target(p)
	raw, ok := t.Config.Own.(json.RawMessage)
	typ, registered := ownType(t.TargetType)
	if !ok || !registered || typ == nil {
		return nil
	}
	v := reflect.New(typ)
	if decodeOwnJSON(raw, v.Interface(), t.TargetType) == nil {
		t.Config.Own = v.Interface()
	}
	return nil
}

// MarshalYAML writes the common fields and the connector's own in one flat
// mapping, in MarshalJSON's order.
func (c Config) MarshalYAML() (any, error) {
	var common yaml.Node
	if err := common.Encode(plainConfig(c)); err != nil {
		return nil, err
	}
	if c.Own == nil {
		return &common, nil
	}
	var own yaml.Node
	if err := own.Encode(c.Own); err != nil {
		return nil, err
	}
	if own.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("target_config: own fields %T do not encode as a mapping", c.Own)
	}
	at := len(common.Content)
	for i := 0; i+1 < len(common.Content); i += 2 {
		if k := common.Content[i].Value; k == "reload_signal" || k == "pid_file" {
			at = i
			break
		}
	}
	content := append(append(append([]*yaml.Node{}, common.Content[:at]...), own.Content...), common.Content[at:]...)
	common.Content = content
	return &common, nil
}
