// Package cow is the server side of nbdserve's classroom mode: one
// read-only base image, and for every client a copy-on-write overlay that
// holds that client's writes, keyed by the client's identity so that it
// survives reconnects and is shared by all of the client's connections.
//
// # Overlay
//
// An Overlay (open.go, overlay.go) splits the export into blocks (4 KiB unless
// Options.BlockSize says otherwise) in one of three states (state.go):
//
//   - Base: reads come from the base image;
//   - Data: reads come from the overlay's data file;
//   - Zero: reads return zeroes (after TRIM or WRITE_ZEROES).
//
// A write to blocks not yet in Data turns them into Data; a partial write
// to such a block first copies the block's current content (base bytes or
// zeroes) into the data file and applies the write to it
// (read-modify-write), so a Data block always holds a whole block. TRIM
// turns whole blocks into Zero and punches them out of the data file;
// its partial edges are left alone (TRIM is a hint). WRITE_ZEROES does the
// same for whole blocks, except with NO_HOLE: then they become Data
// holding zeroes, allocated in the data file (FALLOC_FL_ZERO_RANGE) and
// counted against the quota, because the spec wants the range
// provisioned. Partial edges get zeroes written (zero.go). Extents
// (extents.go) report Data as data, Zero as a hole, and Base as the base
// reports it (a base hole reads as zeroes).
//
// In memory the states are a table of chunks of 16384 blocks (4 KiB
// each), allocated at the first change in them; a missing chunk is all
// Base, and a chunk changed whole at once (a TRIM of the disk) shares one
// all-Zero or all-Data chunk until it is written into. So the map takes
// memory in proportion to what the client changed, not to the export's
// size (a 64 GiB export's table is 8 KiB).
//
// Requests lock the block-state words they touch (16 blocks each) through
// 256 striped reader/writer locks, taken in ascending order (locks.go):
// requests on different blocks run in parallel, a request's blocks change
// atomically as seen by other requests, and read-modify-write never loses
// a concurrent write to the same block. A read of blocks that are all
// Base takes no lock: no block returns to Base while the overlay is open,
// so blocks each seen Base were all Base when the first was seen, and the
// base they are read from never changes (a write to them under way is
// simply not seen yet, as if it came after the read).
//
// The server sends large READs of cached data in place, without a copy
// (Lend, mapped.go): a range is lent as slices of the base's read-only
// mapping (Base blocks), of the data file's (Data blocks) and of zeroes.
// A range of Base blocks only is lent without a lock, for the reason
// above. Any other range holds its blocks' read locks until the server
// has sent it (Unlend), so that no write changes a lent Data block under
// the send: a READ still sees each block as one moment left it. Only the
// overlay's own client's writes to those blocks wait, for one reply.
//
// One Overlay serves every connection of a client, so a FLUSH on any of
// them covers the writes of all (NBD_FLAG_CAN_MULTI_CONN).
//
// A quota (Options.Quota) caps the bytes in Data blocks; a request that
// would pass it fails with an error wrapping ErrQuota before it changes
// anything (the server answers ENOSPC).
//
// # On disk
//
// An overlay directory holds three files (mapfile.go has the byte layouts),
// and a meta.json when a Manager made it:
//
//   - data: a sparse file the size of the base; block i at offset
//     i*BlockSize. Only Data blocks are meaningful.
//   - map: a snapshot of the block states, two bits per block, with a
//     generation number and CRC-32C checksums. Version 2 lists only the
//     chunks of 16384 blocks that are not all Base (a chunk all Data or
//     all Zero in 8 bytes), so it costs in proportion to what the client
//     changed; version 1 (every block) is still read. Rewritten only
//     atomically (map.tmp, fsync, rename, fsync of the directory).
//   - journal: the state changes made since the map of the same
//     generation was written: 24-byte records (first block, count, new
//     state, CRC-32C seeded with the generation), appended and fdatasynced
//     by Sync.
//
// A journal was chosen over rewriting the map at every FLUSH because the
// kernel flushes often (every ext4 journal commit) and a map costs 4 KiB
// per changed chunk (64 MiB of export): a FLUSH then costs in proportion
// to what changed since the last, not to all the client ever changed. The
// map is rewritten (compacted) by Sync when the journal has grown past
// both 256 KiB and the map's size, or after a failed append, and when an
// existing overlay is opened only if its journal is that long or its map
// in the old format: reopening otherwise writes nothing, so it is cheap
// and needs no free space (on a full disk a compaction that fails for
// want of space is given up and the journal goes on; writes that need
// space fail with ENOSPC, reads work). A new overlay has neither file until its
// first Sync with changes, which writes both (so a client that only
// reads costs no fsync for them; a crash before then reopens fresh).
//
// # Crash safety
//
// The overlay changes its files only through the file system seam of
// package internal/disk (Options.FS). Tests put a power-loss model
// there (internal/disk/powerloss): it keeps what each file and directory
// would lose to a power cut since its last sync, and rewrites the files
// as any state POSIX allows after one (unsynced sectors old or new in
// any mix, any prefix of unsynced directory changes), or fails chosen
// calls. The invariants below are checked by random power-loss and
// kill -9 trials against it (powerloss_test.go), by failure injection
// (failure_test.go) and by crash simulations (crash_test.go); removing
// any sync below, or any record of a failed one, makes one of them fail.
// internal/vm/dmlog checks the same against a real kernel: ext4 over
// dm-log-writes in a qemu guest, the log replayed to every Sync and
// between.
//
//  1. The base is never written (it is only read through io.ReaderAt).
//  2. The data of a block is in the data file before its state says Data:
//     WriteAt does its I/O, then changes the state in memory and queues
//     the change for the journal.
//  3. Sync fdatasyncs the data file, then appends the queued changes to
//     the journal and fdatasyncs it. So a durable state never points at
//     data that is not durable, and every request completed before Sync
//     was called is durable when it returns (FLUSH; FUA is a write then
//     Sync). Syncs are serialised, so journal records stay in order.
//  4. A map or journal is replaced atomically: written to NAME.tmp,
//     fsynced (else a later directory sync could make the name point at
//     content that never reached the disk), renamed, and the directory
//     fsynced (else the rename may be lost while later journal records of
//     the new generation are durable).
//  5. Reopening loads the map, then replays the journal records of the
//     same generation up to the first short or bad one (a torn append,
//     whose Sync never returned). It fdatasyncs the data file (what the
//     reopened overlay reads, including writes a kill -9 left unflushed
//     in the page cache, must survive a later power cut), then cuts the
//     journal after its last good record and fdatasyncs it (so nothing
//     is appended behind a torn record), and appends to it from there. A
//     missing journal, or one of an older generation, is replaced by an
//     empty one of the map's generation. When the reopen compacts (a
//     long journal), it writes the next generation's map, then an empty
//     journal of that generation: a crash before the map's rename leaves
//     the old map and journal; one after it leaves a new map with an
//     old-generation journal, which is ignored because the new map
//     already holds it. A torn map.tmp is never read.
//  6. Compaction during Sync excludes every request (all stripe locks)
//     after fdatasyncing the data, so the map it writes describes durable
//     data only. A new overlay's first map is written by its first Sync
//     with changes; from the map's rename on the overlay counts as saved,
//     even if the journal after it fails, and the directories above it
//     (EXPORT/ and the state directory) are fsynced by that Sync or,
//     after a failure, by every later one until it succeeds.
//  7. After a failed data fdatasync the overlay refuses further requests:
//     the kernel may have dropped the dirty pages, and nothing it said
//     about durability could be trusted. After a failed journal append
//     or journal fdatasync the journal may end in a torn record: the next
//     Sync rewrites the map instead of appending.
//
// Hence after a kill -9 of the server every block reads as it did after
// the last Sync, or, for blocks changed since, as one of the versions
// those later requests gave it (a write to a Base block since the last
// Sync reads as the base again): never the data of another block, never
// base and overlay bytes mixed in a block, never bytes it never had. After
// a power loss the same holds, except that an unflushed write to a block
// already in Data may be torn at sector granularity, as on any disk.
// Blocks a crash left allocated in the data file but not in Data are
// punched out at the next open (reclaim.go) by a new Manager or after a
// close that failed; a reopen after a clean close skips the walk.
//
// # Manager
//
// A Manager (manager.go; lifetime.go, control.go) keeps the overlays of several exports in a
// state directory, STATE/EXPORT/CLIENT/ with both names escaped for the
// file system (names.go: MAC and IP addresses stay readable, '/', NUL,
// "." and ".." are refused, long names are hashed), and hands out one
// shared, reference-counted Overlay per export and client (Acquire). Each
// directory has a meta.json with the original names, the last use, the
// allocated size, the lifetime and the base's identity.
//
// meta.json is written when an overlay is created and when it is closed
// (last use and size), never by an Acquire or release of an open overlay,
// and always without the Manager's lock. It is replaced by writing
// meta.json.tmp, fsyncing it and renaming it, without a directory sync:
// a later directory sync may make the rename durable, and must never make
// it point at content that is not. A new overlay's first Sync with
// changes makes meta.json and the directory entries durable. A crash
// before then leaves a directory holding nothing durable, which the next
// Manager ignores and the client's next Acquire reuses.
//
// Acquire opens an overlay without holding the Manager's lock, so
// clients booting at once open theirs in parallel; connections of the
// client arriving meanwhile wait for that open, and Reset refuses it.
// The same holds while an overlay is being closed (lifetime.go).
//
// When its client's last connection ends, an overlay lingers open for
// Config.Linger (5 s by default: a reconnect then costs no reopen), at
// most Config.MaxIdleOpen of them (32; past it the one idle longest is
// closed at once); then it is synced and closed and holds no file
// descriptor. It keeps its data file's mapping for its next open, and
// an overlay the Manager closed cleanly is reopened without the reclaim
// walk (keptmap.go). Ephemeral overlays are dropped once their client has had
// no connection for a grace period (60 s by default), by a timer (tests
// run it in a testing/synctest bubble), and when a Manager starts, for
// those idle longer than that already. Persistent ones stay on disk. An overlay made over another
// base (Policy.BaseID) is not served: an ephemeral one is recreated, a
// persistent one refused. Reset and ResetAll refuse overlays whose client
// is connected (ErrBusy): deleting a disk under a running system corrupts
// it, and deferring to the next disconnect would do the same to a client
// that merely reconnects after a network outage. Drops rename the
// directory into STATE/.trash before deleting it.
//
// The server adapts an Overlay to its Backend (server/overlay.go); package
// cow itself does not import package server, so the server may import it.
package cow
