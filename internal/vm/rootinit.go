package vm

import (
	"crypto/sha256"
	"encoding/hex"
)

// The test root filesystems' /sbin/init is scripts/root-init.sh; its
// header lists the kernel parameters it reads (nbdtest.id=, nbdtest.mode=,
// nbdtest.loops=) and the console markers it prints, among them:
//
//	NBDBOOT-ROOT-INIT ok id=ID mode=MODE root=DEV FSTYPE OPTIONS
//	NBDBOOT-ROOT-WROTE id=ID value=VALUE
//	NBDBOOT-ROOT-CHECK id=ID value=VALUE
//
// It syncs and powers off when done.

// RootValue is the value the test root's init writes to /written-by-guest
// for nbdtest.id=id: the first 16 hex digits of sha256("nbdboot:"+id).
func RootValue(id string) string {
	sum := sha256.Sum256([]byte("nbdboot:" + id))
	return hex.EncodeToString(sum[:])[:16]
}
