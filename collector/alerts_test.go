package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpSink is a real SMTP server on loopback that keeps what it receives.
type smtpSink struct {
	Addr string
	mu   sync.Mutex
	msgs [][]byte
}

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := &smtpSink{Addr: l.Addr().String()}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{sink: sink}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return sink
}

// emailSection is an [alerts.email] table that sends to the sink.
func (s *smtpSink) emailSection() string {
	return fmt.Sprintf("[alerts.email]\nserver = %q\nfrom = \"collector@example.com\"\nto = [\"ops@example.com\"]\ntls = \"none\"\n", s.Addr)
}

// subjects returns the subjects of the messages received so far.
func (s *smtpSink) subjects(t *testing.T) []string {
	t.Helper()
	return s.headers(t, "Subject")
}

// headers returns the header key of each message received so far.
func (s *smtpSink) headers(t *testing.T, key string) []string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.msgs {
		msg, err := mail.ReadMessage(strings.NewReader(string(m)))
		if err != nil {
			t.Fatalf("a received message does not parse: %v", err)
		}
		out = append(out, msg.Header.Get(key))
	}
	return out
}

type sinkSession struct{ sink *smtpSink }

func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *sinkSession) Reset()                               {}
func (s *sinkSession) Logout() error                        { return nil }
func (s *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.sink.mu.Lock()
	s.sink.msgs = append(s.sink.msgs, data)
	s.sink.mu.Unlock()
	return nil
}

func TestAlertsEndToEnd(t *testing.T) {
	h := newHarness(t)
	sink := startSMTPSink(t)
	section, _ := h.storeSection()
	// Any real disk is more than 0.5 % used: the disk rule fires at once.
	alertsSection := "\n[alerts]\ndisk = { above = 0.5 }\n" + sink.emailSection()
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+section+alertsSection)

	if code, stdout, stderr := h.run("collect"); code != exitOK {
		t.Fatalf("collect: exit %d\n%s\n%s", code, stdout, stderr)
	}
	subjects := sink.subjects(t)
	if len(subjects) != 1 || !strings.Contains(subjects[0], "1 alert firing on web1") {
		t.Fatalf("mail after the first round: %q, want one digest for web1", subjects)
	}
	code, stdout, _ := h.run("alerts")
	if code != exitOK || !strings.Contains(stdout, "web1") || !strings.Contains(stdout, "disk") {
		t.Errorf("alerts: exit %d\n%s", code, stdout)
	}

	// Still firing on the next round: no second mail before repeat (4h).
	if code, stdout, stderr := h.run("collect"); code != exitOK {
		t.Fatalf("collect: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if got := sink.subjects(t); len(got) != 1 {
		t.Errorf("mail after the second round: %q, want still only the first", got)
	}

	// Silences are kept in the store.
	if code, stdout, stderr := h.run("silence", "web1", "--for", "1h", "--rule", "disk", "--comment", "resizing"); code != exitOK {
		t.Fatalf("silence: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, _ = h.run("silences")
	if code != exitOK || !strings.Contains(stdout, "web1") || !strings.Contains(stdout, "resizing") {
		t.Errorf("silences: exit %d\n%s", code, stdout)
	}
	// The time left, humanised: 59m (a few ms have passed), never 59m59.987s.
	left := regexp.MustCompile(`web1\s+disk\s+\S+ \S+\s+(59m|1h)\s+(\S+)\s+resizing`).FindStringSubmatch(stdout)
	if left == nil {
		t.Fatalf("silences does not show the time left as 59m:\n%s", stdout)
	}
	id := left[2]
	// The firing disk alert is marked silenced.
	code, stdout, _ = h.run("alerts")
	if code != exitOK || !regexp.MustCompile(`web1\s+disk\s+\S+\s+\S+\s+until \S+ \S+ \((59m|1h) left\)`).MatchString(stdout) {
		t.Errorf("alerts does not mark the silenced alert:\n%s", stdout)
	}
	// unsilence lifts it; an unknown ID is a clear error.
	if code, stdout, stderr := h.run("unsilence", id); code != exitOK || !strings.Contains(stdout, "lifted silence "+id) {
		t.Errorf("unsilence: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, _ = h.run("alerts"); code != exitOK || strings.Contains(stdout, "until") || !regexp.MustCompile(`web1\s+disk\s+\S+\s+\S+\s+-\s`).MatchString(stdout) {
		t.Errorf("alerts after unsilence:\n%s", stdout)
	}
	if code, _, stderr := h.run("unsilence", id); code != exitFailure || !strings.Contains(stderr, "no silence has the id \""+id+"\"") {
		t.Errorf("unsilence of an unknown id: exit %d, %s", code, stderr)
	}
	if code, _, stderr := h.run("silence", "web1", "--rule", "diks"); code != exitUsage || !strings.Contains(stderr, "diks") {
		t.Errorf("silence with an unknown rule: exit %d, %s", code, stderr)
	}

	// alerts test goes straight to every channel.
	code, stdout, _ = h.run("alerts", "test")
	if code != exitOK || !strings.Contains(stdout, "OK") {
		t.Errorf("alerts test: exit %d\n%s", code, stdout)
	}
	if got := sink.subjects(t); len(got) != 2 || !strings.Contains(got[1], "TEST") {
		t.Errorf("mail after alerts test: %q, want a test message", got)
	}

	// A server taken out of the inventory no longer shows as firing.
	h.writeConfig(h.srv.KnownHostsFile, h.server("web2", "")+section+alertsSection)
	code, stdout, stderr := h.run("alerts")
	if code != exitOK || strings.Contains(stdout, "web1") || !strings.Contains(stdout, "no alerts firing") ||
		!strings.Contains(stderr, "1 firing alert(s) of servers not in") {
		t.Errorf("alerts after removing web1: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestRunReloadsAlertChannels starts the daemon with no alert channel: the
// disk alert fires and is only logged. A reload adds e-mail and raises the
// threshold, and the alert's resolution arrives by mail.
func TestRunReloadsAlertChannels(t *testing.T) {
	h := newHarness(t)
	sink := startSMTPSink(t)
	section, _ := h.storeSection()
	sched := "\n[schedule]\ncron = \"* * * * * *\"\nsplay = \"0s\"\ngrace = \"5s\"\n"
	// Any real disk is more than 0.5 % used.
	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+section+sched+"\n[alerts]\ndisk = { above = 0.5 }\n")
	logs, stop := h.startDaemon()
	waitFor(t, "the disk alert", logs, func() bool { return strings.Contains(logs.String(), `msg=alert server=web1 rule=disk state=firing`) })

	h.writeConfig(h.srv.KnownHostsFile, h.server("web1", "")+section+sched+"\n[alerts]\ndisk = { above = 99.99 }\n"+sink.emailSection())
	h.hangup <- struct{}{} // as SIGHUP does
	waitFor(t, "the channels to reload", logs, func() bool { return strings.Contains(logs.String(), "alert channels reloaded") })
	waitFor(t, "the resolution by mail", logs, func() bool {
		for _, s := range sink.subjects(t) {
			if strings.Contains(s, "resolved") && strings.Contains(s, "web1") {
				return true
			}
		}
		return false
	})
	if code := stop(); code != exitOK {
		t.Fatalf("run: exit %d\n%s", code, logs)
	}
	if got := sink.subjects(t); len(got) != 1 {
		t.Errorf("mail: %q, want only the resolution (the firing was before the channel existed)", got)
	}
}
