package inventory

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

// file is the layout of servers.toml. Each top-level table is one field; a
// new table ([store], [schedule], ...) is one more field with a toml tag, and
// unknown-key checks and suggestions pick it up from the tag.
type file struct {
	Defaults defaultsTable `toml:"defaults"`
	Servers  []rawServer   `toml:"server"`
	Store    storeTable    `toml:"store"`
	Schedule scheduleTable `toml:"schedule"`
	Alerts   alertsTable   `toml:"alerts"`
	HTTP     httpTable     `toml:"http"`
	Cluster  *clusterTable `toml:"cluster"`
}

// settings are the keys allowed both in [defaults] and in a [[server]].
// A nil field was not written.
type settings struct {
	User                  *string     `toml:"user"`
	Port                  *int        `toml:"port"`
	IdentityFile          *stringList `toml:"identity_file"`
	IdentityPassphraseEnv *string     `toml:"identity_passphrase_env"`
	KnownHosts            *string     `toml:"known_hosts"`
	Keywords              *[]string   `toml:"keywords"`
	Timeout               *Duration   `toml:"timeout"`
	ConnectTimeout        *Duration   `toml:"connect_timeout"`
	Sample                *Duration   `toml:"sample"`
	ProbeDir              *string     `toml:"probe_dir"`
	Jump                  *string     `toml:"jump"`
}

// defaultsTable is [defaults]: the settings, and the keys only it takes.
type defaultsTable struct {
	settings
	SSHConfig *string `toml:"ssh_config"`
}

// rawServer is one [[server]] as written.
type rawServer struct {
	Name        *string     `toml:"name"`
	Address     *string     `toml:"address"`
	Description string      `toml:"description"`
	Tags        []string    `toml:"tags"`
	Schedule    *string     `toml:"schedule"`
	Resolution  *Duration   `toml:"resolution"`
	Alerts      *rulesTable `toml:"alerts"`
	settings
}

// stringList is a string or an array of strings.
type stringList []string

// UnmarshalTOML accepts "a" and ["a", "b"].
func (l *stringList) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*l = stringList{v}
		return nil
	case []any:
		out := make(stringList, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("found an array holding %s, want a string or an array of strings", tomlTypeName(fmt.Sprintf("%T", e)))
			}
			out = append(out, s)
		}
		*l = out
		return nil
	default:
		return fmt.Errorf("found %s, want a string or an array of strings", tomlTypeName(fmt.Sprintf("%T", v)))
	}
}

// schemaField is one key of a table in the schema.
type schemaField struct {
	key string
	typ reflect.Type
}

// tableKeysCache holds what tableKeys returned for each type: the checks
// run once per key of the file, which may hold tens of thousands.
var tableKeysCache sync.Map // reflect.Type -> []schemaField

// tableKeys lists the keys of struct type t, with embedded structs
// flattened. The result is shared: callers must not modify it.
func tableKeys(t reflect.Type) []schemaField {
	if v, ok := tableKeysCache.Load(t); ok {
		return v.([]schemaField)
	}
	out := listTableKeys(t)
	tableKeysCache.Store(t, out)
	return out
}

func listTableKeys(t reflect.Type) []schemaField {
	var out []schemaField
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, listTableKeys(f.Type)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, schemaField{key: name, typ: f.Type})
	}
	return out
}

func keyNames(fields []schemaField) []string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.key
	}
	return names
}

// tableType returns the struct type a value of type t decodes into, looking
// through pointers and slices; ok is false when t holds no table.
func tableType(t reflect.Type) (reflect.Type, bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t, t.Kind() == reflect.Struct
}

// schemaLookup splits a decoded key path into the known table that holds it
// and the first unknown key. ok is false when every part is known (the key
// was left undecoded only because decoding stopped at an earlier error).
func schemaLookup(path toml.Key) (table toml.Key, unknown string, known []string, ok bool) {
	t := reflect.TypeFor[file]()
	for i, part := range path {
		fields := tableKeys(t)
		var next *schemaField
		for j := range fields {
			if fields[j].key == part {
				next = &fields[j]
				break
			}
		}
		if next == nil {
			return path[:i], part, keyNames(fields), true
		}
		tt, isTable := tableType(next.typ)
		if !isTable {
			return nil, "", nil, false
		}
		t = tt
	}
	return nil, "", nil, false
}

// fieldType returns the Go type of the value at path, or nil.
func fieldType(path toml.Key) reflect.Type {
	t := reflect.TypeFor[file]()
	for i, part := range path {
		var ft reflect.Type
		for _, f := range tableKeys(t) {
			if f.key == part {
				ft = f.typ
				break
			}
		}
		if ft == nil {
			return nil
		}
		if i == len(path)-1 {
			return ft
		}
		tt, ok := tableType(ft)
		if !ok {
			return nil
		}
		t = tt
	}
	return nil
}

// typeHint says how to write a value of type t.
func typeHint(key string, t reflect.Type) string {
	if t == nil {
		return ""
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[Duration]():
		return durationHint
	case t == reflect.TypeFor[stringList]():
		return fmt.Sprintf(`write a string or an array of strings, e.g. %s = "~/.ssh/id_ed25519"`, key)
	case t.Kind() == reflect.Int:
		return fmt.Sprintf("write a number without quotes, e.g. %s = 2222", key)
	case t.Kind() == reflect.String:
		return fmt.Sprintf(`write a string in quotes, e.g. %s = "..."`, key)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return fmt.Sprintf(`write an array of strings, e.g. %s = ["a", "b"]`, key)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return fmt.Sprintf("write [[%s]] (double brackets): each entry is one table in an array", key)
	case t.Kind() == reflect.Struct:
		return fmt.Sprintf("write [%s] (single brackets)", key)
	}
	return ""
}
