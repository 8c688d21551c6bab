package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/inventory"
)

// Email sends each notification as one e-mail with a plain-text and an
// HTML part, over SMTP with STARTTLS, implicit TLS or (for a local relay)
// none.
type Email struct {
	name     string
	cfg      inventory.Email
	host     string
	port     int
	password string
	// rootCAs verifies the server's certificate; nil means the system's
	// roots. Only tests set it.
	rootCAs *x509.CertPool
	now     func() time.Time
}

var _ Notifier = (*Email)(nil)

// NewEmail returns the e-mail channel of cfg, an [alerts.email] as
// inventory.Parse returns it: its server, addresses, tls and username were
// checked there, by the same rules for every command (the server is taken
// apart by the same inventory.Email.HostPort). What only the environment
// supplies is checked here: the SMTP password, the value of the
// environment variable cfg.PasswordEnv, read through getenv (os.Getenv
// outside tests) now.
func NewEmail(cfg inventory.Email, getenv func(string) string) (*Email, error) {
	host, port, err := cfg.HostPort()
	if err != nil {
		return nil, fmt.Errorf("email: server %w", err)
	}
	e := &Email{name: inventory.EmailChannel, cfg: cfg, host: host, port: port, now: time.Now}
	if cfg.Username != "" {
		e.password = getenv(cfg.PasswordEnv)
		if e.password == "" {
			return nil, fmt.Errorf("email: environment variable %s (password_env) is empty or unset: export the SMTP password in it", cfg.PasswordEnv)
		}
	}
	return e, nil
}

// Name returns "email".
func (e *Email) Name() string { return e.name }

// Notify sends n as one e-mail to every recipient. A 5xx reply to the
// message or a recipient is permanent; connection, TLS and authentication
// failures and 4xx replies are worth a retry.
func (e *Email) Notify(ctx context.Context, n alerts.Notification) error {
	msg, err := e.message(n)
	if err != nil {
		return Permanent(fmt.Errorf("email: %w", err))
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	client, stop, err := e.client(ctx)
	if err != nil {
		return Permanent(fmt.Errorf("email: set up SMTP client: %w", err))
	}
	defer stop()
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		err = fmt.Errorf("email to %s via %s: %w", joinTo(e.cfg.To), e.cfg.Server, err)
		var se *mail.SendError
		if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 {
			return Permanent(err)
		}
		return err
	}
	return nil
}

// message builds the e-mail of n. Its Message-ID derives from n.ID, so mail
// clients can drop a copy sent twice.
func (e *Email) message(n alerts.Notification) (*mail.Msg, error) {
	d := newDigest(n)
	text, err := d.renderText()
	if err != nil {
		return nil, err
	}
	html, err := d.renderHTML()
	if err != nil {
		return nil, err
	}
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := msg.From(e.cfg.From); err != nil {
		return nil, fmt.Errorf("from %q: %w", e.cfg.From, err)
	}
	if err := msg.To(e.cfg.To...); err != nil {
		return nil, fmt.Errorf("to %q: %w", e.cfg.To, err)
	}
	msg.Subject(d.Subject)
	msg.SetDateWithValue(e.now())
	msg.SetMessageIDWithValue(n.ID + "@collector")
	msg.SetUserAgent("collector")
	msg.SetBodyString(mail.TypeTextPlain, text)
	msg.AddAlternativeString(mail.TypeTextHTML, html)
	return msg, nil
}

// client returns an SMTP client for one delivery. Its connection is closed
// when ctx ends (go-mail only bounds the dial by ctx); stop releases that.
func (e *Email) client(ctx context.Context) (*mail.Client, func(), error) {
	tlsConfig := &tls.Config{ServerName: e.host, MinVersion: tls.VersionTLS12, RootCAs: e.rootCAs}
	var (
		mu    sync.Mutex
		stops []func() bool
	)
	stop := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range stops {
			s()
		}
	}
	dial := func(dialCtx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		var err error
		d := &net.Dialer{}
		if e.cfg.TLS == "tls" {
			conn, err = (&tls.Dialer{NetDialer: d, Config: tlsConfig}).DialContext(dialCtx, network, addr)
		} else {
			conn, err = d.DialContext(dialCtx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		mu.Lock()
		stops = append(stops, context.AfterFunc(ctx, func() { conn.Close() }))
		mu.Unlock()
		return conn, nil
	}
	timeout := DefaultTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	opts := []mail.Option{
		mail.WithPort(e.port),
		mail.WithTimeout(timeout),
		mail.WithTLSConfig(tlsConfig),
		mail.WithDialContextFunc(dial),
	}
	switch e.cfg.TLS {
	case "tls":
		// dial does the TLS handshake; go-mail must not try STARTTLS.
		opts = append(opts, mail.WithSSL())
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if e.cfg.Username != "" {
		// PLAIN and LOGIN send the password only over TLS (or to
		// localhost).
		opts = append(opts,
			mail.WithOpportunisticSMTPAuth(mail.SMTPAuthSCRAMSHA256, mail.SMTPAuthSCRAMSHA1, mail.SMTPAuthPlain, mail.SMTPAuthLogin),
			mail.WithUsername(e.cfg.Username),
			mail.WithPassword(e.password))
	}
	c, err := mail.NewClient(e.host, opts...)
	if err != nil {
		return nil, stop, err
	}
	return c, stop, nil
}

func joinTo(to []string) string {
	if len(to) == 1 {
		return to[0]
	}
	return fmt.Sprintf("%s and %d more", to[0], len(to)-1)
}
