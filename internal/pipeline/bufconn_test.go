package pipeline

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts the reads of its connections.
type countingListener struct {
	net.Listener
	reads *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.reads}, nil
}

type countingConn struct {
	net.Conn
	reads *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

func (c countingConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// TestBufferedConnReadsFramesInFewReads reads frames as net/http's HTTP/2
// server does (a 9-byte header, then the payload) from a real TCP
// connection: 200 small frames and one of 64 KiB come through intact, in a
// handful of reads of the socket rather than two per frame, and
// CloseWrite still half-closes the connection.
func TestBufferedConnReadsFramesInFewReads(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var reads atomic.Int64
	ln := bufferedListener{countingListener{tcp, &reads}}
	defer ln.Close()

	frame := func(i, n int) []byte {
		f := make([]byte, 9+n)
		binary.BigEndian.PutUint32(f, uint32(n))
		for j := range n {
			f[9+j] = byte(i + j)
		}
		return f
	}
	var stream []byte
	for i := range 200 {
		stream = append(stream, frame(i, 240)...)
	}
	stream = append(stream, frame(7, 64<<10)...)

	client, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if _, err := client.Write(stream); err != nil {
		t.Fatal(err)
	}
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	header := make([]byte, 9)
	for range 201 {
		if _, err := io.ReadFull(server, header); err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		payload := make([]byte, binary.BigEndian.Uint32(header))
		if _, err := io.ReadFull(server, payload); err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(append(got, header...), payload...)
	}
	if !bytes.Equal(got, stream) {
		t.Fatal("the frames read differ from the frames sent")
	}
	// Unbuffered, that is 402 reads. 50 KiB of small frames fit in about
	// 13 buffers; the 64 KiB frame is read into its slice directly, in as
	// many reads as the socket hands it over.
	if n := reads.Load(); n > 60 {
		t.Errorf("%d reads of the socket for 201 frames; want a buffer's worth per read", n)
	}
	t.Logf("%d reads of the socket for 201 frames (%d bytes)", reads.Load(), len(stream))

	if err := server.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("client read after the server's CloseWrite = %d, %v; want EOF", n, err)
	}
}
