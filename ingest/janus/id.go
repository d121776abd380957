package janus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// ID is a VideoRoom or AudioBridge room or participant identifier. Janus
// uses unsigned 64-bit numbers by default and strings when a plugin runs
// with string_ids; an ID keeps whichever form the server used, so it can be
// sent back unchanged. The zero ID means "unset" (Janus then picks one).
//
// IDs are comparable and can be map keys.
type ID struct {
	num   uint64
	str   string
	isStr bool
}

// NumID returns a numeric ID.
func NumID(n uint64) ID { return ID{num: n} }

// StrID returns a string ID (for plugins configured with string_ids).
func StrID(s string) ID { return ID{str: s, isStr: true} }

// ParseID reads an ID from text: digits give a numeric ID, anything else a
// string ID. It is meant for flags and configuration files.
func ParseID(s string) ID {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return NumID(n)
	}
	return StrID(s)
}

// IsZero reports whether the ID is unset.
func (id ID) IsZero() bool { return !id.isStr && id.num == 0 || id.isStr && id.str == "" }

// IsString reports whether the server used a string for this ID.
func (id ID) IsString() bool { return id.isStr }

// Uint64 returns the numeric value; ok is false for string IDs.
func (id ID) Uint64() (n uint64, ok bool) { return id.num, !id.isStr }

// String returns the decimal number or the string.
func (id ID) String() string {
	if id.isStr {
		return id.str
	}
	return strconv.FormatUint(id.num, 10)
}

// MarshalJSON writes a number or a string, as the server sent it.
func (id ID) MarshalJSON() ([]byte, error) {
	if id.isStr {
		return json.Marshal(id.str)
	}
	return []byte(strconv.FormatUint(id.num, 10)), nil
}

var errBadID = errors.New("janus: ID is neither an unsigned integer nor a string")

// UnmarshalJSON accepts an unsigned integer or a string. JSON null leaves
// the ID unchanged.
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return errBadID
	case string(b) == "null":
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("janus: ID: %w", err)
		}
		*id = StrID(s)
		return nil
	default:
		n, err := strconv.ParseUint(string(b), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %.40q", errBadID, b)
		}
		*id = NumID(n)
		return nil
	}
}
