package reinstall

import "io/fs"

// ownerUID: Windows has no owner uid in a FileInfo; its ACLs, not modes,
// keep a user's profile private.
func ownerUID(fs.FileInfo) (int, bool) { return 0, false }
