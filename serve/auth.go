package serve

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Operator is a member of staff allowed to use the API. Only the SHA-256
// of the token is kept, so a memory dump or a config file does not hand
// out working tokens.
type Operator struct {
	Name      string
	TokenHash [32]byte
	// Role is RoleModerator (also when empty), RoleCompliance or
	// RoleAdmin.
	Role string
	// Rooms, when not empty, are the room pseudonyms the operator is
	// limited to: nothing of another room is shown to them.
	Rooms []string
}

// Operator roles: each includes what the one before it may do.
const (
	RoleModerator  = "moderator"  // alerts and their evidence
	RoleCompliance = "compliance" // plus legal holds, exports, the audit log
	RoleAdmin      = "admin"      // plus operators' sessions
)

// roleRank orders roles; an unknown role ranks as a moderator.
func roleRank(role string) int {
	switch role {
	case RoleCompliance:
		return 1
	case RoleAdmin:
		return 2
	}
	return 0
}

// Can reports whether the operator's role includes role.
func (op Operator) Can(role string) bool { return roleRank(op.Role) >= roleRank(role) }

// Sees reports whether the operator may see anything of room.
func (op Operator) Sees(room string) bool {
	return len(op.Rooms) == 0 || slices.Contains(op.Rooms, room)
}

// HashToken returns the SHA-256 of a bearer token.
func HashToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// OperatorFromHex builds an Operator from a hex SHA-256 of its token.
func OperatorFromHex(name, tokenSHA256 string) (Operator, error) {
	b, err := hex.DecodeString(strings.TrimSpace(tokenSHA256))
	if err != nil || len(b) != sha256.Size {
		return Operator{}, fmt.Errorf("serve: operator %q: token_sha256 is not 64 hex digits", name)
	}
	op := Operator{Name: name}
	copy(op.TokenHash[:], b)
	return op, nil
}

// OperatorFromFile builds an Operator whose token is the content of path
// (surrounding white space removed).
func OperatorFromFile(name, path string) (Operator, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Operator{}, fmt.Errorf("serve: operator %q: %w", name, err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return Operator{}, fmt.Errorf("serve: operator %q: the token in %s is shorter than 16 characters", name, path)
	}
	return Operator{Name: name, TokenHash: HashToken(tok)}, nil
}

// errNoOperator: the bearer token matches no operator.
var errNoOperator = errors.New("unknown operator token")

// operators finds the operator a bearer token belongs to. It compares
// against every entry in constant time, so timing tells nothing about
// which or how many tokens exist.
type operators []Operator

func (ops operators) lookup(token string) (Operator, error) {
	h := HashToken(token)
	found := -1
	for i, op := range ops {
		if subtle.ConstantTimeCompare(h[:], op.TokenHash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Operator{}, errNoOperator
	}
	return ops[found], nil
}

// byName finds an operator by name (for a proxy-asserted identity).
func (ops operators) byName(name string) (Operator, bool) {
	for _, op := range ops {
		if op.Name == name {
			return op, true
		}
	}
	return Operator{}, false
}
