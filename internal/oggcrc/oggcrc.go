// Package oggcrc is the CRC-32 of Ogg pages (RFC 3533): polynomial
// 0x04c11db7, not reflected, initial value 0, no final XOR. Go's hash/crc32
// only implements the reflected form, and pion's oggwriter keeps its table
// unexported, so the recorder and the evidence cutter share this one.
package oggcrc

// Update adds p to crc (start with 0).
func Update(crc uint32, p []byte) uint32 {
	for _, b := range p {
		crc = crc<<8 ^ table[byte(crc>>24)^b]
	}
	return crc
}

// Checksum is the CRC of p; for a page, compute it with the CRC field zero.
func Checksum(p []byte) uint32 { return Update(0, p) }

var table = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()
