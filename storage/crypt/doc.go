// Package crypt is Earshot's envelope encryption: AES-256-GCM data keys, one
// per session and speaker (event.KeyID; speaker "" is the session key for
// room-wide data), wrapped by a key-encryption key (KEK). Destroying a data
// key crypto-shreds every copy of what it protected.
//
// # Keys
//
// A [Keyring] implements event.Keys. It creates a data key on first use,
// wraps it with the [KEK] ([LocalKEK]: a 32-byte key file; KMS or Vault
// implement the same interface) and stores the wrapped key in object
// storage, shared by every instance:
//
//	keys/<room>/<session>/<speaker | "_session">   wrapped key (JSON: key ID, KEK ID, nonce ‖ AES-256-GCM)
//	keyindex/speaker/<speaker>/<room>/<session>    empty marker, so a person's keys are found in every room
//	keys-destroyed/<key ID>                        tombstone of a shredded key (no pseudonym in it)
//	keys/_kek.json                                 ID of the deployment's KEK (see Keyring.CheckKEK)
//
// Every instance of a deployment needs the same KEK; [Keyring.CheckKEK],
// run at start, refuses one with another (a missing key file with
// create_kek on would otherwise wrap keys nobody else can unwrap). The KEK
// never leaves the process: whoever runs the object store sees only
// wrapped keys (and pseudonyms in their paths). A wrapped key is bound (as
// associated data) to its key ID, room, session and speaker, so it cannot
// be moved to another path. Creation is a create-only put: two instances
// racing converge on the key that was stored first, and neither uses a key
// before its put succeeded. Unwrapped keys are cached in memory for
// CacheTTL (default one minute). When a refresh cannot reach the store
// (an outage), the expired key serves on and the refresh is retried every
// few seconds, so the live path does not stop; keys never loaded cannot be
// served, and a shred is seen at the first refresh that succeeds.
//
// # Shredding
//
// [Keyring.Shred] writes the tombstone, forgets the key in this process,
// then deletes the wrapped key with all its object versions and its index
// marker. From then on everything sealed under the key (objects and their
// old versions, retained Kafka records, backups) is unreadable, and Seal
// refuses to create the key again (ErrKeyDestroyed): erased data does not
// come back under a new key. A creation racing a shred re-checks the
// tombstone after its put and undoes itself. Other processes that hold the
// key in their cache may use it until the entry expires, at most CacheTTL
// later: a stage there may still decrypt, or encrypt new data under the
// destroyed key (which is then unreadable once their cache expires too).
// Erasure that must be immediate everywhere stops those stages first or
// runs with a short CacheTTL. [Keyring.ShredSpeaker] and
// [Keyring.ShredRoom] shred every key of a person (all rooms, via the
// index) or of a room (speaker and session keys).
//
// # Encrypted objects
//
// [Store] wraps a storage.Store: objects under protected prefixes
// ([DefaultProtectedPrefixes]: audio/, manifests/, transcripts/, alerts/,
// evidence/, exports/) are encrypted on Put and decrypted on Get
// under the data key named by their "room", "session" and "speaker"
// metadata; a protected object without room and session fails
// ([ErrNoKeyRef]) rather than being stored in the clear. Other prefixes
// pass through: audit/, holds/, the keyring's own, and events/ (archived
// envelopes, whose speech is sealed per speaker already). The stored
// format is a header
// ("EARSHOT" 0x01, key ID, 8-byte random nonce prefix) followed by 64 KiB
// AES-256-GCM frames whose associated data binds the header, the object
// key, the frame index and a final-frame flag; see format.go. Reading
// releases plaintext frame by frame, each only after it authenticates, so a
// flipped bit, a truncation, reordered frames or an object moved to another
// key fail with [ErrDecrypt] instead of yielding garbage. The plaintext's
// size and SHA-256 are kept in the metadata ("crypt-size",
// "crypt-sha256", with the key ID in "crypt-key"), so Stat, Get and the
// ErrExists answer of a create-only Put report the plaintext's, as a plain
// store does; listings derive the plaintext size from the stored size. The
// plaintext SHA-256 lets someone holding a candidate recording confirm it
// is the stored one; it reveals nothing else.
package crypt
