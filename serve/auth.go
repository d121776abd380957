package serve

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Operator is a member of staff allowed to use the API. Only the SHA-256
// of the token is kept, so a memory dump or a config file does not hand
// out working tokens.
type Operator struct {
	Name      string
	TokenHash [32]byte
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

func (ops operators) lookup(token string) (string, error) {
	h := HashToken(token)
	name := ""
	for _, op := range ops {
		if subtle.ConstantTimeCompare(h[:], op.TokenHash[:]) == 1 {
			name = op.Name
		}
	}
	if name == "" {
		return "", errNoOperator
	}
	return name, nil
}
