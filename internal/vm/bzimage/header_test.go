package bzimage

import (
	"encoding/binary"
	"errors"
	"testing"
)

// image builds a minimal bzImage: setup sectors, header fields, payload.
func image(setupSects byte, version uint16, payloadOff, payloadLen uint32, payload []byte) []byte {
	setup := int(setupSects)
	if setup == 0 {
		setup = 4
	}
	start := (setup + 1) * 512
	b := make([]byte, start+int(payloadOff)+len(payload))
	b[offSetupSects] = setupSects                                   // setup_sects
	copy(b[offMagic:], "HdrS")                                      // header magic
	binary.LittleEndian.PutUint16(b[offVersion:], version)          // boot protocol version
	binary.LittleEndian.PutUint32(b[offPayloadOffset:], payloadOff) // payload_offset
	binary.LittleEndian.PutUint32(b[offPayloadLength:], payloadLen) // payload_length
	copy(b[start+int(payloadOff):], payload)
	return b
}

var xzStream = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00, 0xaa, 0xbb}

func TestPayload(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    []byte
		format  Format
		wantErr bool
	}{
		{"xz after 27 setup sectors", image(27, 0x020f, 0x3a0, uint32(len(xzStream)), xzStream), xzStream, XZ, false},
		{"setup_sects 0 means 4", image(0, 0x0208, 16, 3, []byte{0x1f, 0x8b, 0x08}), []byte{0x1f, 0x8b, 0x08}, Gzip, false},
		{"zstd", image(1, 0x020f, 0, 4, []byte{0x28, 0xb5, 0x2f, 0xfd}), []byte{0x28, 0xb5, 0x2f, 0xfd}, Zstd, false},
		{"unknown magic still returned", image(1, 0x020f, 0, 2, []byte{1, 2}), []byte{1, 2}, Unknown, false},
		{"protocol 2.07 lacks payload fields", image(1, 0x0207, 0, 2, []byte{1, 2}), nil, Unknown, true},
		{"length past end", image(1, 0x020f, 0, 100, []byte{1, 2}), nil, Unknown, true},
		{"zero length", image(1, 0x020f, 0, 0, []byte{1, 2}), nil, Unknown, true},
		{"offset past end", image(1, 0x020f, 0xffffffff, 0xffffffff, nil), nil, Unknown, true},
		{"short", make([]byte, 0x24f), nil, Unknown, true},
		{"no HdrS", make([]byte, 4096), nil, Unknown, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, f, err := Payload(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Payload: err %v, want error %v", err, tt.wantErr)
			}
			if string(got) != string(tt.want) || f != tt.format {
				t.Errorf("Payload = %x %s, want %x %s", got, f, tt.want, tt.format)
			}
		})
	}
}

func TestPayloadNotBzImage(t *testing.T) {
	if _, _, err := Payload(make([]byte, 4096)); !errors.Is(err, ErrNotBzImage) {
		t.Fatalf("err = %v, want ErrNotBzImage", err)
	}
}

func FuzzPayload(f *testing.F) {
	f.Add(image(27, 0x020f, 0x3a0, uint32(len(xzStream)), xzStream))
	f.Add(image(0, 0x0208, 0, 3, []byte{0x1f, 0x8b, 0x08}))
	f.Add(make([]byte, 0x250))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, _, err := Payload(b)
		if err != nil {
			return
		}
		if len(p) == 0 || len(p) > len(b) {
			t.Fatalf("payload of %d bytes from a %d-byte input", len(p), len(b))
		}
	})
}
