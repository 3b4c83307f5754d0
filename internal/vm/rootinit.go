package vm

import (
	"crypto/sha256"
	"encoding/hex"
)

// The test root filesystems' /sbin/init (scripts/root-init.sh) reads
// nbdtest.id=ID, nbdtest.mode=write|loop|check|shell and nbdtest.loops=N
// from the kernel command line and prints, one per line:
//
//	NBDBOOT-ROOT-INIT ok id=ID mode=MODE root=DEV FSTYPE OPTIONS
//	NBDBOOT-ROOT-WROTE id=ID value=VALUE      (write: /written-by-guest)
//	NBDBOOT-ROOT-LOOP N ok|FAIL               (loop, each round)
//	NBDBOOT-ROOT-LOOP-DONE ok|FAIL            (loop)
//	NBDBOOT-ROOT-CHECK id=ID value=VALUE |none (check: an earlier boot's file)
//	NBDBOOT-ROOT-ERROR message
//
// then syncs and powers off.

// RootValue is the value the test root's init writes to /written-by-guest
// for nbdtest.id=id: the first 16 hex digits of sha256("nbdboot:"+id).
func RootValue(id string) string {
	sum := sha256.Sum256([]byte("nbdboot:" + id))
	return hex.EncodeToString(sum[:])[:16]
}
