package transcribe

import "github.com/earshot/earshot/storage/crypt"

// testKeys seals and opens protected data in this package's tests.
var testKeys = crypt.NewMemory()
