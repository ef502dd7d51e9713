package target

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/certctl/certctl/strictyaml"
)

// decode reads the one YAML document strictly, target_config's own fields
// into the typed config target_type's connector registered: the decoder
// refuses any field neither the common config nor the connector's has.
func decode(data []byte) (t Target, err error) {
	kind := peekType(data)
	typ, _ := ownType(kind)
	if err = decodeInto(data, &t, typ); err == nil {
		return t, nil
	}
	if msg, ok := strictyaml.Describe(err, "target"); ok {
		return t, fieldErr("target", "%s", msg)
	}
	return t, decodeErr(data, err, kind)
}

// peekType is the document's target_type, read leniently ("" if none).
func peekType(data []byte) (kind string) {
	defer func() { _ = recover() }() // yaml.v3 panics on some input: Decode reports it
	var head struct {
		TargetType string `yaml:"target_type"`
	}
	_ = yaml.Unmarshal(data, &head)
	return head.TargetType
}

// decodeInto decodes data into t, with target_config's own fields into a
// new value of own (nil: no own fields).
func decodeInto(data []byte, t *Target, own reflect.Type) error {
	if own == nil {
		return strictyaml.Decode(data, t)
	}
	cfg := reflect.StructOf([]reflect.StructField{
		{Name: "Common", Type: reflect.TypeOf(plainConfig{}), Tag: `yaml:",inline"`},
		{Name: "Own", Type: own, Tag: `yaml:",inline"`},
	})
	doc := reflect.StructOf([]reflect.StructField{
		{Name: "TargetID", Type: reflect.TypeOf(""), Tag: `yaml:"target_id"`},
		{Name: "TargetType", Type: reflect.TypeOf(""), Tag: `yaml:"target_type"`},
		{Name: "Host", Type: reflect.TypeOf(""), Tag: `yaml:"host,omitempty"`},
		{Name: "Config", Type: cfg, Tag: `yaml:"target_config"`},
	})
	v := reflect.New(doc)
	if err := strictyaml.Decode(data, v.Interface()); err != nil {
		return err
	}
	d := v.Elem()
	t.TargetID, t.TargetType, t.Host = d.Field(0).String(), d.Field(1).String(), d.Field(2).String()
	t.Config = Config(d.Field(3).Field(0).Interface().(plainConfig))
	o := reflect.New(own)
	o.Elem().Set(d.Field(3).Field(1))
	if !o.Elem().IsZero() {
		t.Config.Own = o.Interface()
	}
	return nil
}

// decodeErr names the field a decoding error is about: the unknown field, the
// field whose value does not parse. It falls back to "target".
func decodeErr(data []byte, err error, kind string) error {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return fieldErr("target", "%v", err)
	}
	var ne *nodeError
	if errors.As(err, &ne) {
		// An anchored value may be decoded where an alias names it: no field then.
		f := fieldAt(&root, "", func(k, v *yaml.Node) bool { return v.Line == ne.line && v.Column == ne.col && v.Anchor == "" })
		if f == "" {
			return fieldErr("target", "line %d: %v", ne.line, ne.err)
		}
		return fieldErr(f, "%v", ne.err)
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		// yaml.v3 says "line 5: field cert_pth not found in type target.Config"
		// or "line 7: cannot unmarshal !!str `many` into int" (long values cut
		// to 7 characters and "...").
		var line int
		var name string
		var match func(k, v *yaml.Node) bool
		msg := te.Errors[0]
		if _, err := fmt.Sscanf(msg, "line %d: field %s not found", &line, &name); err == nil {
			match = func(k, v *yaml.Node) bool { return k.Line == line && k.Value == name }
			if f := fieldAt(&root, "", match); f == "target_config."+name {
				return refuseOwn(kind, name)
			} else if f != "" {
				return fieldErr(f, "line %d: unknown field %q", line, name)
			}
		} else if _, err := fmt.Sscanf(msg, "line %d:", &line); err == nil {
			if i, j := strings.Index(msg, "`"), strings.LastIndex(msg, "`"); i >= 0 && j > i {
				val := strings.TrimSuffix(msg[i+1:j], "...")
				match = func(k, v *yaml.Node) bool {
					return v.Kind == yaml.ScalarNode && v.Anchor == "" && v.Line == line && strings.HasPrefix(v.Value, val)
				}
			}
		}
		if match != nil {
			if f := fieldAt(&root, "", match); f != "" {
				return fieldErr(f, "%s", strings.Join(te.Errors, "; "))
			}
		}
	}
	return fieldErr("target", "%v", err)
}

// fieldAt returns the dotted name of the first mapping key, in document order,
// for which match holds, or "".
func fieldAt(n *yaml.Node, prefix string, match func(k, v *yaml.Node) bool) string {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if f := fieldAt(c, prefix, match); f != "" {
				return f
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f := k.Value
			if prefix != "" {
				f = prefix + "." + f
			}
			if match(k, v) {
				return f
			}
			if g := fieldAt(v, f, match); g != "" {
				return g
			}
		}
	}
	return ""
}
