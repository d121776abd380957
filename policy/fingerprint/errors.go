package fingerprint

import "errors"

var errShortSecret = errors.New("fingerprint: HMAC secret shorter than 32 bytes")
