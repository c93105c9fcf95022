package pipeline

import (
	"bufio"
	"io"
	"net"
)

// connReadBuffer is the read buffer of each cleartext connection.
const connReadBuffer = 4 << 10

// bufferedListener hands out connections whose reads go through a buffer.
//
// net/http's HTTP/2 server reads each frame straight from the connection:
// a read of the 9-byte header, then one of the payload, two system calls
// per frame. A PublishStream sends one small frame per event, and those
// reads were 11 % of the pipeline's CPU (bench/README.md, "The pipeline
// with no route"). Through a 4 KiB buffer one read takes in a dozen
// frames; a read larger than the buffer still goes straight to the
// connection (bufio.Reader does that when its buffer is empty). Over TLS
// the tls.Conn already reads whole records into its own buffer, so only
// cleartext listeners are wrapped.
type bufferedListener struct{ net.Listener }

func (l bufferedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, connReadBuffer)}, nil
}

// bufferedConn is a net.Conn whose Read is buffered. Everything else is
// the connection's own, CloseWrite and ReadFrom included, which net/http
// uses when the connection has them.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the connection when it can (a *net.TCPConn).
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom lets a *net.TCPConn send a file with sendfile, as it would
// unwrapped.
func (c *bufferedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// writerOnly hides a writer's ReadFrom, so that io.Copy does not call
// back into it.
type writerOnly struct{ io.Writer }
