package ogg

// The Ogg page checksum (RFC 3533 §6): CRC-32 with polynomial 0x04c11db7,
// not reflected, initial value 0 and no final XOR, over the whole page with
// its checksum field zero. Go's hash/crc32 implements only the reflected
// form, so the table is built here.

// UpdateCRC adds p to crc (start with 0).
func UpdateCRC(crc uint32, p []byte) uint32 {
	for _, b := range p {
		crc = crc<<8 ^ crcTable[byte(crc>>24)^b]
	}
	return crc
}

// CRC is the checksum of p; for a page, compute it with the checksum field
// (bytes 22–25) zero.
func CRC(p []byte) uint32 { return UpdateCRC(0, p) }

// crcTable is a constant lookup table, computed once.
var crcTable = func() (t [256]uint32) {
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
