package api

import (
	"errors"
	"fmt"
	"os"
)

// MaxInputBytes caps a plan or tenancy file: far above what any cluster's
// plan or export takes, and far below what would exhaust memory.
const MaxInputBytes = 256 << 20

// readInput reads a file the operator named (a plan, a tenancy file): a
// link is followed (the path is the operator's choice), but only a regular
// file of at most MaxInputBytes is read, so a device or a planted giant
// file is an error, not an exhausted memory.
func readInput(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s, not a file ks-clean wrote", path, describe(fi))
	}
	return readChecked(f, fi, path, MaxInputBytes, errTooLarge)
}

var errTooLarge = errors.New("larger than any file ks-clean writes")
