package delivery

import (
	"bytes"
	"io"

	"github.com/golang/snappy"
)

func snappyEncode(b []byte) []byte { return snappy.Encode(nil, b) }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
