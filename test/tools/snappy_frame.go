// snappy_frame: standard input framed as github.com/golang/snappy's buffered
// writer frames it (the writer CDI's cloner uses), on standard output. A test
// tool: the upload server's clone tests frame their streams with an encoder
// that is not the project's. Built in GOPATH mode against Debian's
// golang-github-golang-snappy-dev:
//   GO111MODULE=off GOPATH=/usr/share/gocode go build -o snappy_frame snappy_frame.go
package main

import (
	"io"
	"os"

	"github.com/golang/snappy"
)

func main() {
	w := snappy.NewBufferedWriter(os.Stdout)
	if _, err := io.Copy(w, os.Stdin); err != nil {
		os.Exit(1)
	}
	if err := w.Close(); err != nil {
		os.Exit(1)
	}
}
