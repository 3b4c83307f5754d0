package cow

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/disk/powerloss"
)

// Power-loss trials: random requests on an overlay whose files go
// through the power-loss model, with power cuts at random points (inside
// Sync, compaction and open too), kill -9s (the page cache survives)
// and clean reopens. After every cut or kill the overlay must open and
// every block must read as
//   - its content at the last successful Sync (FLUSH, FUA), or after the
//     last open, exactly, if no request touched it since;
//   - otherwise that content or one of the versions requests gave it
//     since, whole; a block that was Data at the last Sync may also be
//     torn between those versions at sector granularity (rewritten in
//     place, like any disk).
//
// The base must stay untouched. A failing trial prints its seed;
// POWERLOSS_SEED=n reruns that one alone, POWERLOSS_TIME=d runs trials
// for d (make soak), else powerLossTrials run (make test).
const powerLossTrials = 30

func TestPowerLoss(t *testing.T) {
	if s := os.Getenv("POWERLOSS_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("POWERLOSS_SEED: %v", err)
		}
		if _, _, err := powerLossTrial(t, seed); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		return
	}
	var deadline time.Time
	if d := os.Getenv("POWERLOSS_TIME"); d != "" {
		dur, err := time.ParseDuration(d)
		if err != nil {
			t.Fatalf("POWERLOSS_TIME: %v", err)
		}
		deadline = time.Now().Add(dur)
	}
	start := uint64(time.Now().UnixNano())
	var trials, cuts, kills int
	for i := uint64(0); ; i++ {
		if deadline.IsZero() && i >= powerLossTrials || !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
		seed := start + i
		if deadline.IsZero() {
			seed = i // make test: the same seeds every run
		}
		c, k, err := powerLossTrial(t, seed)
		trials, cuts, kills = trials+1, cuts+c, kills+k
		if err != nil {
			t.Fatalf("power-loss trial with seed %d: %v\nrerun: POWERLOSS_SEED=%d go test -run 'TestPowerLoss$' ./cow", seed, err, seed)
		}
	}
	t.Logf("power-loss model: %d trials, %d power cuts, %d kill -9s, 0 violations", trials, cuts, kills)
}

// powerLossCuts is how many cuts and kills a trial makes.
const powerLossCuts = 6

// plState is what a trial expects of the overlay's blocks.
type plState struct {
	t        *testing.T
	base     *testBase
	root     string
	dir      string
	m        *powerloss.Model
	r        *rand.Rand
	ov       *Overlay
	model    []byte             // what the overlay reads now
	synced   []byte             // what every block read at the last sync point
	wasData  []bool             // blocks that were Data at the last sync point
	versions map[int64][][]byte // blocks changed since: their versions
}

func powerLossTrial(t *testing.T, seed uint64) (cuts, kills int, err error) {
	err = powerLossRun(t, seed, &cuts, &kills)
	return cuts, kills, err
}

func powerLossRun(t *testing.T, seed uint64, cuts, kills *int) error {
	base := newTestBase(t, testSize, testHoles...)
	before := base.sum(t)
	root := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(root, 0o700); err != nil {
		return err
	}
	m, err := powerloss.New(root, seed)
	if err != nil {
		return err
	}
	s := &plState{t: t, base: base, root: root, dir: filepath.Join(root, "client"), m: m,
		r: rand.New(rand.NewPCG(seed, 13)), model: append([]byte(nil), base.content...),
		versions: map[int64][][]byte{}}
	s.synced = append([]byte(nil), s.model...)
	s.wasData = make([]bool, (testSize+bs4k-1)/bs4k)
	if err := s.open(); err != nil {
		return err
	}
	for cut := range powerLossCuts {
		for range 10 + s.r.IntN(30) {
			if err := s.step(); err != nil {
				return fmt.Errorf("life %d: %w", cut, err)
			}
		}
		kill := s.r.IntN(3) == 0
		if !kill {
			s.m.CutAfter(s.r.IntN(12))
			// Go on until the cut is reached: it may hit a Sync, a
			// compaction or an open.
			for i := 0; i < 20 && !s.isCut(); i++ {
				if err := s.step(); err != nil && !errors.Is(err, powerloss.ErrCut) {
					return fmt.Errorf("life %d, before the cut: %w", cut, err)
				}
			}
		}
		if s.ov != nil {
			s.ov.abandon()
			s.ov = nil
		}
		what := "kill -9"
		*kills++
		if !kill {
			*kills--
			*cuts++
			what = "power cut"
			if err := s.m.Crash(); err != nil {
				return err
			}
		}
		if err := s.open(); err != nil {
			return fmt.Errorf("after %s %d: %w", what, cut, err)
		}
		if err := s.check(what); err != nil {
			return fmt.Errorf("after %s %d: %w", what, cut, err)
		}
	}
	s.ov.Close()
	if base.sum(t) != before {
		return errors.New("the base image changed")
	}
	return nil
}

func (s *plState) isCut() bool { return s.m.IsCut() }

// open opens the overlay; after an open, what it reads is durable.
func (s *plState) open() error {
	ov, err := Open(s.dir, s.base.be, Options{FS: s.m})
	if err != nil {
		return err
	}
	if s.r.IntN(2) == 0 {
		ov.compactAt = 0 // compact at every Sync with changes
	}
	s.ov = ov
	return nil
}

// check compares what the reopened overlay reads with what may be there,
// and makes it the new sync point.
func (s *plState) check(what string) error {
	got := make([]byte, testSize)
	if _, err := s.ov.ReadAt(got, 0); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	for b := int64(0); b*bs4k < testSize; b++ {
		g := blockOf(got, b)
		cands := append([][]byte{blockOf(s.synced, b)}, s.versions[b]...)
		ok := false
		for _, c := range cands {
			ok = ok || bytes.Equal(g, c)
		}
		if !ok && s.wasData[b] {
			ok = tornOf(g, cands)
		}
		if !ok {
			why := "neither as flushed nor as any later version"
			if len(s.versions[b]) == 0 {
				why = "not as flushed (no request touched it since)"
			}
			return fmt.Errorf("%s: block %d reads %s: %s", what, b, why, firstDiff(g, blockOf(s.synced, b)))
		}
	}
	checkExtentsAgree(s.t, s.ov, got, what)
	s.model = got
	s.syncPoint()
	return nil
}

// tornOf reports whether every sector of g is that sector of a candidate.
func tornOf(g []byte, cands [][]byte) bool {
	for off := 0; off < len(g); off += powerloss.SectorSize {
		end := min(off+powerloss.SectorSize, len(g))
		ok := false
		for _, c := range cands {
			ok = ok || bytes.Equal(g[off:end], c[off:end])
		}
		if !ok {
			return false
		}
	}
	return true
}

// syncPoint records that everything the overlay reads now is durable.
func (s *plState) syncPoint() {
	s.synced = append(s.synced[:0], s.model...)
	clear(s.versions)
	s.wasData = s.dataBlocks()
}

// dataBlocks reports which blocks are Data now.
func (s *plState) dataBlocks() []bool {
	d := make([]bool, (testSize+bs4k-1)/bs4k)
	for b := range d {
		d[b] = s.ov.states.get(int64(b)) == StateData
	}
	return d
}

// step does one random request; a request that fails is taken to have
// happened in part or not at all.
func (s *plState) step() error {
	if s.ov == nil { // an open was cut
		return powerloss.ErrCut
	}
	switch k := s.r.IntN(20); {
	case k < 2: // FLUSH
		return s.sync()
	case k < 4: // a clean reopen (Close syncs)
		data := s.dataBlocks()
		err := s.ov.Close()
		s.ov = nil
		if err != nil {
			return err
		}
		s.synced = append(s.synced[:0], s.model...)
		clear(s.versions)
		s.wasData = data
		return s.open()
	default:
		p := randomOp(s.r)
		if p.kind == 'z' {
			p.noHol = s.r.IntN(2) == 0
		}
		return s.request(p, k < 7) // FUA: the request, then Sync
	}
}

func (s *plState) sync() error {
	if err := s.ov.Sync(); err != nil {
		return err
	}
	s.syncPoint()
	return nil
}

func (s *plState) request(p op, fua bool) error {
	var err error
	switch p.kind {
	case 'w':
		_, err = s.ov.WriteAt(bytes.Repeat([]byte{p.fill}, int(p.n)), p.off)
	case 't':
		err = s.ov.Trim(p.off, p.n)
	case 'z':
		err = s.ov.Zero(p.off, p.n, p.noHol, false)
	}
	p.applyModel(s.model)
	for b := p.off / bs4k; b <= (p.off+max(p.n, 1)-1)/bs4k && b*bs4k < testSize; b++ {
		s.versions[b] = append(s.versions[b], append([]byte(nil), blockOf(s.model, b)...))
	}
	if err != nil {
		return err
	}
	if fua {
		return s.sync()
	}
	return nil
}
