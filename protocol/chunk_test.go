package protocol

import (
	"bytes"
	"reflect"
	"testing"
)

// TestChunkEncoders checks the whole-chunk encoders the server sends,
// byte by byte, and that what they write reads back as the same chunk.
func TestChunkEncoders(t *testing.T) {
	for _, tt := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"OFFSET_DATA header", AppendOffsetDataHeader(nil, ChunkFlagDone, 7, 4096, 512), []byte{
			0x66, 0x8e, 0x33, 0xef, // structured reply magic
			0x00, 0x01, // flags: DONE
			0x00, 0x01, // type: OFFSET_DATA
			0, 0, 0, 0, 0, 0, 0, 7, // cookie 7
			0x00, 0x00, 0x02, 0x08, // length: 8 + 512 data bytes
			0, 0, 0, 0, 0, 0, 0x10, 0x00, // offset 4096 (the data follows)
		}},
		{"OFFSET_HOLE", AppendOffsetHoleChunk(nil, 0, 7, 8192, 65536), []byte{
			0x66, 0x8e, 0x33, 0xef, // structured reply magic
			0x00, 0x00, // flags: none
			0x00, 0x02, // type: OFFSET_HOLE
			0, 0, 0, 0, 0, 0, 0, 7, // cookie 7
			0x00, 0x00, 0x00, 0x0c, // length 12
			0, 0, 0, 0, 0, 0, 0x20, 0x00, // offset 8192
			0x00, 0x01, 0x00, 0x00, // hole length 65536
		}},
		{"ERROR", AppendErrorChunk(nil, ChunkFlagDone, 9, ChunkErr{Errno: EIO, Message: "bad"}), []byte{
			0x66, 0x8e, 0x33, 0xef, // structured reply magic
			0x00, 0x01, // flags: DONE
			0x80, 0x01, // type: ERROR
			0, 0, 0, 0, 0, 0, 0, 9, // cookie 9
			0x00, 0x00, 0x00, 0x09, // length 6 + 3
			0x00, 0x00, 0x00, 0x05, // error EIO
			0x00, 0x03, // message length 3
			'b', 'a', 'd', // message
		}},
		{"ERROR_OFFSET", AppendErrorChunk(nil, ChunkFlagDone, 9, ChunkErr{Errno: EIO, Offset: 512, HasOffset: true}), []byte{
			0x66, 0x8e, 0x33, 0xef, // structured reply magic
			0x00, 0x01, // flags: DONE
			0x80, 0x02, // type: ERROR_OFFSET
			0, 0, 0, 0, 0, 0, 0, 9, // cookie 9
			0x00, 0x00, 0x00, 0x0e, // length 6 + 0 + 8
			0x00, 0x00, 0x00, 0x05, // error EIO
			0x00, 0x00, // message length 0
			0, 0, 0, 0, 0, 0, 0x02, 0x00, // offset 512
		}},
		{"BLOCK_STATUS", AppendBlockStatusChunk(nil, ChunkFlagDone, 3, 1, []Extent{{4096, 0}, {8192, StateHoleZero}}), []byte{
			0x66, 0x8e, 0x33, 0xef, // structured reply magic
			0x00, 0x01, // flags: DONE
			0x00, 0x05, // type: BLOCK_STATUS
			0, 0, 0, 0, 0, 0, 0, 3, // cookie 3
			0x00, 0x00, 0x00, 0x14, // length 4 + 2*8
			0x00, 0x00, 0x00, 0x01, // context id 1
			0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, // 4096 bytes allocated
			0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x03, // 8192 bytes HOLE|ZERO
		}},
		{"NONE", AppendNoneChunk(nil, 5), []byte{
			0x66, 0x8e, 0x33, 0xef, // structured reply magic
			0x00, 0x01, // flags: DONE
			0x00, 0x00, // type: NONE
			0, 0, 0, 0, 0, 0, 0, 5, // cookie 5
			0x00, 0x00, 0x00, 0x00, // length 0
		}},
	} {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s\n% x\nwant\n% x", tt.name, tt.got, tt.want)
			continue
		}
		data := 0 // bytes the chunk's length counts that follow the encoding
		if h, _ := ReadReplyHeader(bytes.NewReader(tt.got), nil); h.Chunk.Type == ChunkOffsetData {
			data = 512
		}
		h, err := ReadReplyHeader(bytes.NewReader(tt.got), nil)
		if err != nil || !h.Structured || int(h.Chunk.Length) != len(tt.got)-ChunkHeaderSize+data {
			t.Errorf("%s: reads back as %+v, %v", tt.name, h, err)
		}
	}
	// Encoders append: a prefix is kept.
	if got := AppendNoneChunk([]byte{1, 2}, 5); !bytes.Equal(got[:2], []byte{1, 2}) || len(got) != 2+ChunkHeaderSize {
		t.Errorf("AppendNoneChunk after a prefix: % x", got)
	}
	if got := AppendErrorChunk([]byte{1}, 0, 1, ChunkErr{Message: "x"}); len(got) != 1+ChunkHeaderSize+7 || got[1+19] != 7 {
		t.Errorf("AppendErrorChunk after a prefix: % x", got)
	}
}

func TestAddExtent(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   []Extent
		n    int64
		fl   uint32
		want []Extent
	}{
		{"first", nil, 4096, 0, []Extent{{4096, 0}}},
		{"merges the same flags", []Extent{{4096, 0}}, 512, 0, []Extent{{4608, 0}}},
		{"new run for new flags", []Extent{{4096, 0}}, 512, StateHoleZero, []Extent{{4096, 0}, {512, StateHoleZero}}},
		{"nothing for zero", []Extent{{4096, 0}}, 0, StateHoleZero, []Extent{{4096, 0}}},
		{"split past 4 GiB", nil, 1<<32 + 4096, 0, []Extent{{maxExtentLength, 0}, {8192, 0}}},
		{"fills the last run, then splits", []Extent{{maxExtentLength - 4096, 0}}, 8192, 0, []Extent{{maxExtentLength, 0}, {4096, 0}}},
	} {
		if got := AddExtent(tt.in, tt.n, tt.fl); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
