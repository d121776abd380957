package oggcrc

import (
	"encoding/binary"
	"os"
	"testing"
)

// TestChecksumOfARealPage checks the CRC that opusenc wrote on the first
// page of a fixture file (made by libogg, not by this code).
func TestChecksumOfARealPage(t *testing.T) {
	b, err := os.ReadFile("../../transcribe/testdata/fox.opus")
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:4]) != "OggS" {
		t.Fatal("fixture does not start with an Ogg page")
	}
	nseg := int(b[26])
	size := 27 + nseg
	for _, l := range b[27 : 27+nseg] {
		size += int(l)
	}
	page := append([]byte(nil), b[:size]...)
	want := binary.LittleEndian.Uint32(page[22:])
	binary.LittleEndian.PutUint32(page[22:], 0)
	if got := Checksum(page); got != want {
		t.Fatalf("CRC %08x, the file says %08x", got, want)
	}
	if got := Update(Update(0, page[:10]), page[10:]); got != want {
		t.Fatalf("CRC in two parts %08x, want %08x", got, want)
	}
}
