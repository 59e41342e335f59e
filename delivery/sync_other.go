//go:build !linux

package delivery

import "os"

func fdatasync(f *os.File) error { return f.Sync() }
