package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/agnivade/levenshtein"
	"gopkg.in/yaml.v3"
)

// EnvPrefix starts the environment variable of every config key: the
// key's path in upper case with "_" between its parts (registry.url is
// PIPELINE_REGISTRY_URL). A field's `env:"NAME"` tag replaces its part of
// the name where two paths would spell the same variable (bus.tls.ca_file
// is PIPELINE_BUS_KAFKA_TLS_CA_FILE, bus.tls_ca_file PIPELINE_BUS_TLS_CA_FILE).
const EnvPrefix = "PIPELINE_"

// ConfigKey is one key of pipeline.yaml, found by reflection over the yaml
// tags of Config, so a key added to the struct is here at once.
type ConfigKey struct {
	// Path is the key as written in the file: "bus.kind",
	// "sinks[].url" for a key of each list entry.
	Path string
	// Env is its environment variable, or empty: keys inside lists
	// (sinks, auth.tokens, auth.certificates) and maps have none.
	Env string

	index []int // reflect field index path from Config, for Env keys
}

// ConfigKeys lists every key of the config file, in the order of the
// struct fields.
func ConfigKeys() []ConfigKey {
	var out []ConfigKey
	collectKeys(reflect.TypeFor[Config](), "", EnvPrefix, nil, true, &out)
	return out
}

var durationType = reflect.TypeFor[time.Duration]()

func collectKeys(t reflect.Type, path, env string, index []int, envOK bool, out *[]ConfigKey) {
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		envPart := strings.ToUpper(name)
		if tag := f.Tag.Get("env"); tag != "" {
			envPart = tag
		}
		p, e := path+name, env+envPart
		idx := append(append([]int(nil), index...), i)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			collectKeys(ft, p+".", e+"_", idx, envOK, out)
		case ft.Kind() == reflect.Slice && elem(ft).Kind() == reflect.Struct:
			collectKeys(elem(ft), p+"[].", "", nil, false, out)
		default:
			k := ConfigKey{Path: p}
			if envOK && ft.Kind() != reflect.Map {
				k.Env, k.index = e, idx
			}
			*out = append(*out, k)
		}
	}
}

func elem(t reflect.Type) reflect.Type {
	t = t.Elem()
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// yamlName is the key of a struct field, or "" for a field the file
// cannot set.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

// Load is the server's config: the file at path (none when empty), with
// ${VAR} expanded; then every PIPELINE_* variable of a key that env
// (os.LookupEnv when nil) finds set and not empty; then overrides (the
// command line's flags); then the defaults. So a flag beats a variable,
// which beats the file, which beats the default.
func Load(path string, env func(string) (string, bool), overrides ...func(*Config)) (*Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	return load(path, env, true, overrides)
}

// LoadConfig reads path (empty: no file), with ${VAR} expanded from the
// process's environment, applies the overrides and then the defaults. It
// reads no PIPELINE_* key variables (Load does): tests and tools get the
// config they wrote, whatever the environment.
func LoadConfig(path string, overrides ...func(*Config)) (*Config, error) {
	return load(path, os.LookupEnv, false, overrides)
}

func load(path string, env func(string) (string, bool), keyVariables bool, overrides []func(*Config)) (*Config, error) {
	cfg, err := readConfigFile(path, env)
	if err != nil {
		return nil, err
	}
	if keyVariables {
		if err := applyEnv(cfg, env); err != nil {
			return nil, err
		}
	}
	for _, o := range overrides {
		o(cfg)
	}
	if err := cfg.ApplyDefaults(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// readConfigFile decodes path into a Config, checking every key and value
// against the struct first so that an error names the key and the form it
// expects instead of a Go type.
func readConfigFile(path string, env func(string) (string, bool)) (*Config, error) {
	cfg := &Config{}
	if path == "" {
		return cfg, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(raw)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) { // an empty file means all defaults
			return cfg, nil
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	var errs []error
	expandNode(&root, env, &errs)
	if len(errs) == 0 && len(root.Content) > 0 {
		checkNode(root.Content[0], reflect.TypeFor[Config](), "", &errs)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("config %s: %w", path, errors.Join(errs...))
	}
	if err := root.Decode(cfg); err != nil { // checked above: a surprise here is a bug
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// expandNode replaces ${VAR} in every scalar value (keys are left alone):
// ${VAR} must be set, ${VAR:-default} takes default when VAR is unset or
// empty, $${ is a literal ${, and any other $ stays as it is. A plain
// scalar is typed again after expansion (port: ${PORT} is a number).
func expandNode(n *yaml.Node, env func(string) (string, bool), errs *[]error) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			expandNode(c, env, errs)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			expandNode(n.Content[i], env, errs)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		v, err := expandVars(n.Value, env)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("line %d: %w", n.Line, err))
			return
		}
		if v != n.Value {
			n.Value = v
			if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
				n.Tag = "" // resolved again from the new text
			}
		}
	}
}

func expandVars(s string, env func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		s = s[i:]
		switch {
		case strings.HasPrefix(s, "$${"):
			b.WriteString("${")
			s = s[3:]
		case strings.HasPrefix(s, "${"):
			end := strings.IndexByte(s, '}')
			if end < 0 {
				return "", fmt.Errorf("%q: ${ without its closing }", s)
			}
			name, def, hasDef := strings.Cut(s[2:end], ":-")
			if !validVarName(name) {
				return "", fmt.Errorf("%q: %q is not a variable name (letters, digits and _, not starting with a digit); write $${ for a literal ${", s[:end+1], name)
			}
			v, ok := env(name)
			switch {
			case hasDef && v == "":
				v = def
			case !ok:
				return "", fmt.Errorf("${%s}: the environment variable %s is not set (write ${%s:-default} for a default)", name, name, name)
			}
			b.WriteString(v)
			s = s[end+1:]
		default:
			b.WriteByte('$')
			s = s[1:]
		}
	}
}

func validVarName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// checker collects the errors of checkNode. left bounds the nodes it
// visits: aliases may repeat a section many times over (a "billion
// laughs" file), and no config needs more than this.
type checker struct {
	errs   []error
	left   int
	fields map[reflect.Type]map[string]reflect.StructField
}

const maxConfigNodes = 100_000

// checkNode checks n against the Go type t that it will be decoded into,
// collecting one error per bad key or value, each naming the key path,
// its line and the form expected.
func checkNode(n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	c := &checker{left: maxConfigNodes, fields: map[reflect.Type]map[string]reflect.StructField{}}
	c.check(n, t, path)
	*errs = append(*errs, c.errs...)
}

func (c *checker) check(n *yaml.Node, t reflect.Type, path string) {
	errs := &c.errs
	if c.left--; c.left == 0 {
		*errs = append(*errs, fmt.Errorf("line %d: the file expands to more than %d values (aliases repeating sections?)", n.Line, maxConfigNodes))
	}
	if c.left <= 0 {
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // the zero value: the default
	}
	fail := func(format string, args ...any) {
		key := path
		if key == "" {
			key = "the file"
		}
		*errs = append(*errs, fmt.Errorf("line %d: %s: %s", n.Line, key, fmt.Sprintf(format, args...)))
	}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			fail("expected a duration such as 5s, 500ms, 2m or 1h30m")
			return
		}
		if tag := n.ShortTag(); tag == "!!int" || tag == "!!float" {
			fail("%s has no unit: write a duration such as %ss, 500ms, 2m or 1h30m", n.Value, n.Value)
			return
		}
		if _, err := time.ParseDuration(n.Value); err != nil {
			fail("%q is not a duration: write one such as 5s, 500ms, 2m or 1h30m", n.Value)
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			fail("expected a section of keys (%s), not %s", strings.Join(structKeys(t), ", "), describe(n))
			return
		}
		fields := c.fields[t]
		if fields == nil {
			fields = map[string]reflect.StructField{}
			for i := range t.NumField() {
				if name := yamlName(t.Field(i)); name != "" {
					fields[name] = t.Field(i)
				}
			}
			c.fields[t] = fields
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.ShortTag() == "!!merge" { // <<: *anchor merges keys of this section
				merged := []*yaml.Node{v}
				if v.Kind == yaml.SequenceNode {
					merged = v.Content
				}
				for _, m := range merged {
					c.check(m, t, path)
				}
				continue
			}
			f, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, fmt.Errorf("line %d: %s", k.Line, unknownKey(path, k.Value, structKeys(t))))
				continue
			}
			c.check(v, f.Type, path+dot(path)+k.Value)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			fail("expected a list such as [a, b] or lines starting with -, not %s", describe(n))
			return
		}
		for i, item := range n.Content {
			c.check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			fail("expected a mapping such as {name: value}, not %s", describe(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.check(n.Content[i+1], t.Elem(), path+"."+n.Content[i].Value)
		}
	default: // a scalar
		if n.Kind != yaml.ScalarNode {
			fail("expected %s, not %s", scalarForm(t), describe(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			fail("%q is not %s", n.Value, scalarForm(t))
		}
	}
}

func dot(path string) string {
	if path == "" {
		return ""
	}
	return "."
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a section of keys"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func scalarForm(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := t.Bits()
		return fmt.Sprintf("a whole number (at most %d)", int64(1)<<(bits-1)-1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return "a text value"
	}
}

func structKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			out = append(out, name)
		}
	}
	return out
}

// unknownKey names a key the section does not have, with the closest key
// of that section when one is near (a typo), or the key's place when it
// exists in another section.
func unknownKey(section, key string, siblings []string) string {
	where := "at the top level"
	if section != "" {
		where = "in " + section
	}
	msg := fmt.Sprintf("unknown key %q %s", key, where)
	best, bestDist := "", 1<<30
	for _, s := range siblings {
		if d := levenshtein.ComputeDistance(key, s); d < bestDist {
			best, bestDist = s, d
		}
	}
	if best != "" && bestDist <= max(2, len(key)/3) {
		return msg + fmt.Sprintf(": did you mean %q?", best)
	}
	var elsewhere []string
	for _, k := range ConfigKeys() {
		if k.Path == key || strings.HasSuffix(k.Path, "."+key) {
			elsewhere = append(elsewhere, k.Path)
		}
	}
	if len(elsewhere) > 0 {
		sort.Strings(elsewhere)
		return msg + fmt.Sprintf(": the key %s is in another section", strings.Join(elsewhere, " or "))
	}
	return msg + fmt.Sprintf(" (the keys here: %s)", strings.Join(siblings, ", "))
}

// applyEnv sets every key whose PIPELINE_* variable env finds set and not
// empty, checked like a value in the file (a list is comma-separated).
func applyEnv(cfg *Config, env func(string) (string, bool)) error {
	var errs []error
	for _, k := range ConfigKeys() {
		if k.Env == "" {
			continue
		}
		v, ok := env(k.Env)
		if !ok || v == "" {
			continue
		}
		field := fieldByIndex(reflect.ValueOf(cfg).Elem(), k.index)
		node := &yaml.Node{Kind: yaml.ScalarNode, Value: v, Line: 0}
		if field.Kind() == reflect.Slice {
			node = &yaml.Node{Kind: yaml.SequenceNode}
			for _, item := range strings.Split(v, ",") {
				if item = strings.TrimSpace(item); item != "" {
					node.Content = append(node.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: item})
				}
			}
		}
		var bad []error
		checkNode(node, field.Type(), k.Path, &bad)
		if len(bad) > 0 {
			// "line 0: key: problem" becomes "PIPELINE_X (key): problem".
			_, problem, _ := strings.Cut(bad[0].Error(), k.Path+": ")
			errs = append(errs, fmt.Errorf("%s (%s): %s", k.Env, k.Path, problem))
			continue
		}
		if err := node.Decode(field.Addr().Interface()); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", k.Env, k.Path, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config from the environment: %w", errors.Join(errs...))
	}
	return nil
}

// fieldByIndex is reflect.Value.FieldByIndex that allocates the nil
// pointers on the way (PIPELINE_AUTH_JWT_ISSUER makes an auth.jwt section).
func fieldByIndex(v reflect.Value, index []int) reflect.Value {
	for _, i := range index {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(i)
	}
	return v
}

// CheckFiles reports every file the config names (each key ending in
// _file: certificates, keys, CA bundles, a JWKS) that cannot be read, so
// `pipeline config check` finds what would stop the start.
func (c *Config) CheckFiles() error {
	var errs []error
	root := reflect.ValueOf(c).Elem()
	for _, k := range ConfigKeys() {
		if k.index == nil || !strings.HasSuffix(k.Path, "_file") {
			continue
		}
		v, ok := valueByIndex(root, k.index)
		if !ok || v.Kind() != reflect.String || v.String() == "" {
			continue
		}
		f, err := os.Open(v.String())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k.Path, err))
			continue
		}
		f.Close()
	}
	return errors.Join(errs...)
}

// valueByIndex is fieldByIndex that stops (false) at a nil pointer.
func valueByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	for _, i := range index {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(i)
	}
	return v, true
}
