package dmlog

import (
	"math/rand/v2"
	"os"
)

// The workload the guest runs and the host checks: requests on an
// overlay of BaseSize bytes, a Sync now and then.
const (
	BaseSize  = 64 * BlockSize
	BlockSize = 4096
)

// Op is one request: 'w' write Fill, 't' trim, 'z' write zeroes, 's'
// Sync (FLUSH).
type Op struct {
	Kind   byte
	Off, N int64
	Fill   byte
}

// Ops returns the seeded sequence of n requests.
func Ops(seed uint64, n int) []Op {
	r := rand.New(rand.NewPCG(seed, 77))
	ops := make([]Op, n)
	for i := range ops {
		off := r.Int64N(BaseSize)
		o := Op{Off: off, N: r.Int64N(min(6*BlockSize, BaseSize-off)) + 1}
		switch k := r.IntN(10); {
		case k < 2:
			o.Kind = 's'
		case k < 3:
			o.Kind = 't'
		case k < 4:
			o.Kind = 'z'
		default:
			o.Kind, o.Fill = 'w', byte(r.IntN(255)+1)
		}
		ops[i] = o
	}
	return ops
}

// Base returns the base image's content: no zero byte, so that zeroes
// read back are telling.
func Base() []byte {
	b := make([]byte, BaseSize)
	for i := range b {
		b[i] = byte(i*7%251 + 1)
	}
	return b
}

// Apply applies o to img as the overlay does (a trim zeroes whole blocks
// only).
func (o Op) Apply(img []byte) {
	switch o.Kind {
	case 'w':
		for i := o.Off; i < o.Off+o.N; i++ {
			img[i] = o.Fill
		}
	case 'z':
		clear(img[o.Off : o.Off+o.N])
	case 't':
		fb, le := (o.Off+BlockSize-1)/BlockSize, (o.Off+o.N)/BlockSize
		for b := fb; b < le; b++ {
			clear(img[b*BlockSize : (b+1)*BlockSize])
		}
	}
}

// MarkName is the log mark the guest writes once the Sync of op i
// returned.
func MarkName(i int) string { return "sync-" + itoa(i) }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// BaseFile is a base image file of BaseSize bytes (a cow.Base).
type BaseFile struct{ *os.File }

// Size is BaseSize.
func (BaseFile) Size() int64 { return BaseSize }
