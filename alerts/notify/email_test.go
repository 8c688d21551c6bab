package notify

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/inventory"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// newTestEmail returns the e-mail channel for a server at addr, trusting
// cert (when not nil) instead of the system's roots.
func newTestEmail(t *testing.T, addr, mode string, cert *testCert) *Email {
	t.Helper()
	e, err := NewEmail(inventory.Email{
		Server:      addr,
		From:        "collector@example.com",
		To:          []string{"ops@example.com", "oncall@example.org"},
		TLS:         mode,
		Username:    "alerts",
		PasswordEnv: "SMTP_PASSWORD",
	}, env(map[string]string{"SMTP_PASSWORD": "s3cret"}))
	if err != nil {
		t.Fatalf("NewEmail: %v", err)
	}
	if cert != nil {
		e.rootCAs = cert.pool
	}
	return e
}

func TestEmailDelivered(t *testing.T) {
	cert := newTestCert(t)
	for _, mode := range []string{"starttls", "tls"} {
		t.Run(mode, func(t *testing.T) {
			srv := startMailServer(t, mailServerOptions{cert: &cert, implicitTLS: mode == "tls", user: "alerts", pass: "s3cret"})
			e := newTestEmail(t, srv.Addr, mode, &cert)
			n := sample()
			if err := e.Notify(context.Background(), n); err != nil {
				t.Fatalf("Notify: %v", err)
			}
			msgs := srv.messages()
			if len(msgs) != 1 {
				t.Fatalf("server got %d messages, want 1", len(msgs))
			}
			got := msgs[0]
			if !got.TLS || got.User != "alerts" {
				t.Errorf("delivered with TLS %v as user %q, want TLS as alerts", got.TLS, got.User)
			}
			if got.From != "collector@example.com" || !slices.Equal(got.To, []string{"ops@example.com", "oncall@example.org"}) {
				t.Errorf("envelope from %q to %q", got.From, got.To)
			}
			m := parseMail(t, got.Data)
			if want := "[collector] 3 alerts firing on web1, web7 (+1 resolved)"; m.Subject != want {
				t.Errorf("subject = %q, want %q", m.Subject, want)
			}
			if !slices.Equal(m.To, []string{"ops@example.com", "oncall@example.org"}) {
				t.Errorf("To header = %q", m.To)
			}
			if want := "<" + n.ID + "@collector>"; m.MessageID != want {
				t.Errorf("Message-ID = %q, want %q", m.MessageID, want)
			}
			wantText, _ := newDigest(n).renderText()
			if strings.ReplaceAll(m.Text, "\r\n", "\n") != wantText {
				t.Errorf("text part:\n%s\nwant:\n%s", m.Text, wantText)
			}
			for _, want := range []string{"<table", "<td>web7</td>", "disk 84.0 % &lt; 85 %"} {
				if !strings.Contains(m.HTML, want) {
					t.Errorf("HTML part lacks %q:\n%s", want, m.HTML)
				}
			}
		})
	}
}

func TestEmailNoTLSRelay(t *testing.T) {
	srv := startMailServer(t, mailServerOptions{})
	e, err := NewEmail(inventory.Email{Server: srv.Addr, From: "c@example.com", To: []string{"ops@example.com"}, TLS: "none"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Notify(context.Background(), NewTestNotification(t0)); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	m := parseMail(t, msgs[0].Data)
	if !strings.HasPrefix(m.Subject, "[collector] TEST: ") || !strings.Contains(m.Text, "test notification") {
		t.Errorf("test notification not marked: subject %q\n%s", m.Subject, m.Text)
	}
}

func TestEmailVerifiesCertificate(t *testing.T) {
	cert := newTestCert(t)
	srv := startMailServer(t, mailServerOptions{cert: &cert, user: "alerts", pass: "s3cret"})
	e := newTestEmail(t, srv.Addr, "starttls", nil) // system roots: the self-signed cert is unknown
	err := e.Notify(context.Background(), sample())
	var unknown x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &unknown) {
		t.Fatalf("Notify = %v, want an unknown-authority error", err)
	}
	if IsPermanent(err) {
		t.Errorf("certificate error is permanent; a fixed server certificate should get the message through")
	}
	if n := len(srv.messages()); n != 0 {
		t.Errorf("server got %d messages over an unverified connection", n)
	}
}

func TestEmailWrongPasswordNotSent(t *testing.T) {
	cert := newTestCert(t)
	srv := startMailServer(t, mailServerOptions{cert: &cert, user: "alerts", pass: "other"})
	e := newTestEmail(t, srv.Addr, "starttls", &cert)
	if err := e.Notify(context.Background(), sample()); err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("Notify = %v, want an authentication error", err)
	}
	if n := len(srv.messages()); n != 0 {
		t.Errorf("server got %d messages", n)
	}
}

func TestEmailRejectedRecipientIsPermanent(t *testing.T) {
	cert := newTestCert(t)
	srv := startMailServer(t, mailServerOptions{cert: &cert, user: "alerts", pass: "s3cret", rcptErr: &smtp.SMTPError{
		Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user",
	}})
	e := newTestEmail(t, srv.Addr, "starttls", &cert)
	err := e.Notify(context.Background(), sample())
	if err == nil || !IsPermanent(err) {
		t.Fatalf("Notify = %v, want a permanent error", err)
	}

	srv = startMailServer(t, mailServerOptions{cert: &cert, user: "alerts", pass: "s3cret", rcptErr: &smtp.SMTPError{
		Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later",
	}})
	e = newTestEmail(t, srv.Addr, "starttls", &cert)
	if err := e.Notify(context.Background(), sample()); err == nil || IsPermanent(err) {
		t.Fatalf("Notify with 451 = %v, want a retryable error", err)
	}
}

func TestEmailHonoursContext(t *testing.T) {
	// A server that accepts the connection and never greets.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	e := newTestEmail(t, l.Addr().String(), "starttls", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = e.Notify(ctx, sample())
	if err == nil || IsPermanent(err) {
		t.Fatalf("Notify = %v, want a retryable error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Notify took %v after its context ended", took)
	}
}

// TestNewEmailErrors covers what NewEmail checks itself: the password only
// the environment supplies. The rules on the file are inventory's
// (TestChannelsAcceptWhatParseAccepts).
func TestNewEmailErrors(t *testing.T) {
	cfg := inventory.Email{Server: "smtp.example.com:587", From: "c@example.com", To: []string{"ops@example.com"}, Username: "u", PasswordEnv: "SMTP_PASSWORD"}
	if _, err := NewEmail(cfg, env(nil)); err == nil || !strings.Contains(err.Error(), "SMTP_PASSWORD (password_env) is empty or unset") {
		t.Errorf("NewEmail = %v, want an error naming SMTP_PASSWORD", err)
	}
	e, err := NewEmail(cfg, env(map[string]string{"SMTP_PASSWORD": "x"}))
	if err != nil || e.host != "smtp.example.com" || e.port != 587 || e.Name() != inventory.EmailChannel {
		t.Errorf("NewEmail = %+v, %v", e, err)
	}
}

// TestEmailMessageIDStable checks that a notification the outbox sends
// again carries the Message-ID of the first copy, so mail systems and
// clients can drop the second, and that another notification has its own.
func TestEmailMessageIDStable(t *testing.T) {
	srv := startMailServer(t, mailServerOptions{})
	e, err := NewEmail(inventory.Email{Server: srv.Addr, From: "c@example.com", To: []string{"ops@example.com"}, TLS: "none"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	n, other := sample(), NewTestNotification(t0)
	for _, m := range []alerts.Notification{n, n, other} {
		if err := e.Notify(context.Background(), m); err != nil {
			t.Fatalf("Notify: %v", err)
		}
	}
	var ids []string
	for _, m := range srv.messages() {
		ids = append(ids, parseMail(t, m.Data).MessageID)
	}
	want := []string{"<" + n.ID + "@collector>", "<" + n.ID + "@collector>", "<" + other.ID + "@collector>"}
	if !slices.Equal(ids, want) {
		t.Errorf("Message-IDs = %q, want %q", ids, want)
	}
}
