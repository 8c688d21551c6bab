package scale

import (
	"bufio"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/crawlerfleet/collector/probe/snapshot"
)

// fakeSpec is what the fake SSH server (a child process) is given, as JSON
// in fakeEnv.
type fakeSpec struct {
	HostKey   []byte `json:"host_key"`   // ed25519 private key seed
	ClientKey []byte `json:"client_key"` // the authorized public key, wire form
	Snapshot  []byte `json:"snapshot"`   // the recorded snapshot
	Uname     string `json:"uname"`      // what `uname -sm` prints
}

// fakeMain serves the probe protocol of collector/pull over SSH on a
// loopback port (printed on stdout) until killed: `uname -sm` prints spec's
// uname; the probe command waits its -sample and prints the recorded
// snapshot with the time of now; a command with stdin (an upload) reads it
// and succeeds. Every connection with the client key is accepted. So a
// target costs a handshake and a goroutine or two, and the collector does
// all its real work.
func fakeMain(specJSON string) int {
	var spec fakeSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "fake sshd:", err)
		return 2
	}
	signer, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(spec.HostKey))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake sshd:", err)
		return 2
	}
	client, err := ssh.ParsePublicKey(spec.ClientKey)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake sshd:", err)
		return 2
	}
	var snap snapshot.Snapshot
	if err := json.Unmarshal(spec.Snapshot, &snap); err != nil {
		fmt.Fprintln(os.Stderr, "fake sshd:", err)
		return 2
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if string(key.Marshal()) == string(client.Marshal()) {
				return nil, nil
			}
			return nil, fmt.Errorf("unknown key")
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake sshd:", err)
		return 1
	}
	fmt.Println(ln.Addr().String())
	f := &fake{snap: snap, uname: spec.Uname}
	for {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		go f.serve(c, cfg)
	}
}

type fake struct {
	snap  snapshot.Snapshot
	uname string
	mu    sync.Mutex // guards snap.Time while a reply is encoded
}

func (f *fake) serve(c net.Conn, cfg *ssh.ServerConfig) {
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		c.Close()
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs) // keepalives get a "false": an answer is all that counts
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go f.session(ch, creqs)
	}
}

// session answers one exec request.
func (f *fake) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(false, nil)
			continue
		}
		var cmd struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &cmd); err != nil {
			req.Reply(false, nil)
			return
		}
		req.Reply(true, nil)
		status := f.run(ch, cmd.Command)
		ch.CloseWrite()
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], status)
		ch.SendRequest("exit-status", false, b[:])
		return
	}
}

// run answers cmd on ch and returns its exit status.
func (f *fake) run(ch ssh.Channel, cmd string) uint32 {
	switch {
	case cmd == "uname -sm":
		io.WriteString(ch, f.uname+"\n")
		return 0
	case strings.HasPrefix(cmd, "exec "):
		time.Sleep(sampleOf(cmd))
		f.mu.Lock()
		f.snap.Time = time.Now().UTC()
		out, _ := json.Marshal(f.snap)
		f.mu.Unlock()
		w := bufio.NewWriter(ch)
		w.Write(out)
		w.WriteString("\n")
		w.Flush()
		return 0
	default: // an upload: take what is sent
		io.Copy(io.Discard, ch)
		return 0
	}
}

// sampleOf returns the -sample of a probe command line ("... '-sample'
// '1s' ..."), zero when there is none.
func sampleOf(cmd string) time.Duration {
	_, rest, ok := strings.Cut(cmd, "'-sample' '")
	if !ok {
		return 0
	}
	v, _, _ := strings.Cut(rest, "'")
	d, _ := time.ParseDuration(v)
	return d
}
