package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crawlerfleet/collector/internal/testutil"
	"github.com/crawlerfleet/collector/inventory"
)

// startTestAPI starts the daemon's HTTP listener on a free loopback port
// with no store behind it: the tests here ask for a path that does not
// exist, which is answered without reading the store.
func startTestAPI(t *testing.T, e *env, tokenEnv string) (*apiServer, error) {
	t.Helper()
	inv, err := inventory.Parse(strings.NewReader(""), "servers.toml")
	if err != nil {
		t.Fatal(err)
	}
	inv.HTTP.TokenEnv = tokenEnv
	var current atomic.Pointer[inventory.Inventory]
	current.Store(inv)
	logger, _ := testutil.Logger(t)
	s, err := e.startAPI("127.0.0.1:0", inv, &current, &stores{logger: logger}, nil, logger)
	if err == nil {
		t.Cleanup(s.stop)
	}
	return s, err
}

// dialAPI opens a connection to s, closed when the test ends.
func dialAPI(t *testing.T, s *apiServer) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestAPIClosesIdleConnections checks that a keep-alive connection left
// idle after its answer is closed by the server after httpIdleTimeout.
func TestAPIClosesIdleConnections(t *testing.T) {
	old := httpIdleTimeout
	httpIdleTimeout = 200 * time.Millisecond
	t.Cleanup(func() { httpIdleTimeout = old })

	s, err := startTestAPI(t, &env{getenv: func(string) string { return "" }}, "")
	if err != nil {
		t.Fatal(err)
	}
	if h := s.http; h.ReadHeaderTimeout <= 0 || h.ReadTimeout <= 0 || h.WriteTimeout < time.Minute || h.IdleTimeout != httpIdleTimeout || h.MaxHeaderBytes != httpMaxHeaderBytes {
		t.Errorf("server limits: read header %v, read %v, write %v, idle %v, header bytes %d",
			h.ReadHeaderTimeout, h.ReadTimeout, h.WriteTimeout, h.IdleTimeout, h.MaxHeaderBytes)
	}
	conn := dialAPI(t, s)
	if _, err := io.WriteString(conn, "GET /no-such-path HTTP/1.1\r\nHost: collector\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Close {
		t.Fatalf("answer %s, close %v; want 404 on a kept-alive connection", resp.Status, resp.Close)
	}

	// Now idle: the server must hang up. The deadline only keeps a broken
	// server from hanging the test.
	idleSince := time.Now()
	conn.SetReadDeadline(idleSince.Add(30 * time.Second))
	_, err = br.ReadByte()
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("the idle connection was still open after %v", time.Since(idleSince).Round(time.Second))
	case !errors.Is(err, io.EOF):
		t.Fatalf("read on the idle connection = %v, want EOF", err)
	}
}

// TestAPIRefusesLargeHeaders checks that headers past httpMaxHeaderBytes
// are answered 431, and headers under it are served.
func TestAPIRefusesLargeHeaders(t *testing.T) {
	s, err := startTestAPI(t, &env{getenv: func(string) string { return "" }}, "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		size int
		want int
	}{
		{"under the cap", httpMaxHeaderBytes / 2, http.StatusNotFound},
		// net/http allows 4 KiB of slack over MaxHeaderBytes.
		{"over the cap", httpMaxHeaderBytes + 8<<10, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := dialAPI(t, s)
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			// Write while reading: the server may answer before it has read
			// the whole request.
			go fmt.Fprintf(conn, "GET /no-such-path HTTP/1.1\r\nHost: collector\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", tt.size))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%d bytes of headers: answer %s, want %d", tt.size, resp.Status, tt.want)
			}
		})
	}
}

// TestAPITokenVariable checks that a token_env variable that is set but
// empty is called empty, not unset.
func TestAPITokenVariable(t *testing.T) {
	const name = "COLLECTOR_TEST_HTTP_TOKEN"
	e := &env{getenv: os.Getenv}

	t.Setenv(name, "")
	_, err := startTestAPI(t, e, name)
	if want := "[http] token_env: environment variable " + name + " is empty"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("startAPI with %s empty = %v, want an error starting %q", name, err, want)
	}

	os.Unsetenv(name) // t.Setenv restores it after the test
	_, err = startTestAPI(t, e, name)
	if want := "[http] token_env: environment variable " + name + " is not set"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("startAPI with %s unset = %v, want an error starting %q", name, err, want)
	}

	t.Setenv(name, "s3cret")
	if _, err := startTestAPI(t, e, name); err != nil {
		t.Errorf("startAPI with a token: %v", err)
	}
}
