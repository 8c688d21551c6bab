package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

// hookServer is an httptest server that records each request and answers
// with status and body.
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []hookRequest
	status   int
	body     string
}

type hookRequest struct {
	Query       url.Values
	Path        string
	ContentType string
	Body        []byte
}

func startHookServer(t *testing.T, status int, body string) *hookServer {
	t.Helper()
	h := &hookServer{status: status, body: body}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.requests = append(h.requests, hookRequest{Query: r.URL.Query(), Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Body: b})
		status, body := h.status, h.body
		h.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) only(t *testing.T) hookRequest {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.requests) != 1 {
		t.Fatalf("webhook got %d requests, want 1", len(h.requests))
	}
	r := h.requests[0]
	if r.ContentType != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", r.ContentType)
	}
	return r
}

func newTestWebhook(t *testing.T, cfg inventory.Webhook, vars map[string]string, now time.Time) *Webhook {
	t.Helper()
	w, err := NewWebhook(cfg, env(vars), nil)
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	w.now = func() time.Time { return now }
	return w
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode payload: %v\n%s", err, b)
	}
	return v
}

func TestWebhookGeneric(t *testing.T) {
	h := startHookServer(t, http.StatusOK, "")
	w := newTestWebhook(t, inventory.Webhook{Name: "am-receiver", URL: h.URL + "/hook", Kind: "generic"}, nil, t0)
	n := sample()
	if err := w.Notify(context.Background(), n); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	r := h.only(t)
	golden(t, "payload-generic.json", indent(t, r.Body))

	// The fields Alertmanager receivers read, in Alertmanager's shape.
	var p struct {
		Version           string            `json:"version"`
		GroupKey          string            `json:"groupKey"`
		Status            string            `json:"status"`
		Receiver          string            `json:"receiver"`
		GroupLabels       map[string]string `json:"groupLabels"`
		CommonLabels      map[string]string `json:"commonLabels"`
		CommonAnnotations map[string]string `json:"commonAnnotations"`
		ExternalURL       *string           `json:"externalURL"`
		Alerts            []struct {
			Status      string            `json:"status"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
			StartsAt    time.Time         `json:"startsAt"`
			EndsAt      time.Time         `json:"endsAt"`
			Fingerprint string            `json:"fingerprint"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Version != "4" || p.Status != "firing" || p.Receiver != "am-receiver" || p.GroupKey != n.ID || p.ExternalURL == nil || p.GroupLabels == nil {
		t.Errorf("header fields: version %q status %q receiver %q groupKey %q externalURL %v groupLabels %v",
			p.Version, p.Status, p.Receiver, p.GroupKey, p.ExternalURL, p.GroupLabels)
	}
	if len(p.Alerts) != 4 {
		t.Fatalf("%d alerts, want 4", len(p.Alerts))
	}
	// NewNotification sorts by server: db2 (resolved) comes first.
	db2, web7 := p.Alerts[0], p.Alerts[3]
	if db2.Status != "resolved" || db2.Labels["server"] != "db2" || db2.Labels["alertname"] != "DiskFull" || !db2.EndsAt.Equal(t0.Add(-time.Minute)) {
		t.Errorf("resolved alert = %+v", db2)
	}
	if web7.Status != "firing" || web7.Labels["severity"] != "critical" || !web7.EndsAt.IsZero() || !web7.StartsAt.Equal(t0.Add(-15*time.Minute)) {
		t.Errorf("firing alert = %+v", web7)
	}
	if !strings.HasPrefix(web7.Annotations["summary"], "down: 3 failed attempts") {
		t.Errorf("summary annotation = %q", web7.Annotations["summary"])
	}
	if len(p.CommonLabels) != 0 || len(p.CommonAnnotations) != 0 {
		t.Errorf("different alerts share labels %v, annotations %v", p.CommonLabels, p.CommonAnnotations)
	}
	if len(web7.Fingerprint) != 16 || web7.Fingerprint == db2.Fingerprint {
		t.Errorf("fingerprints %q, %q", web7.Fingerprint, db2.Fingerprint)
	}
}

// TestWebhookGenericGroupKey checks that the generic payload carries a key
// a receiver can deduplicate on: the same when the outbox posts one
// notification again, different for another notification.
func TestWebhookGenericGroupKey(t *testing.T) {
	h := startHookServer(t, http.StatusOK, "")
	w := newTestWebhook(t, inventory.Webhook{Name: "am", URL: h.URL, Kind: "generic"}, nil, t0)
	n := sample()
	later := *alerts.NewNotification(t0.Add(time.Minute), []alerts.Alert{
		alert("web1", "cpu", monitor.AlertResolved, "cpu ok", t0, t0.Add(time.Minute)),
	}, false)
	for _, m := range []alerts.Notification{n, n, later} { // n delivered twice: a redelivery
		if err := w.Notify(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var keys []string
	for _, r := range h.requests {
		keys = append(keys, decode[amPayload](t, r.Body).GroupKey)
	}
	if len(keys) != 3 || keys[0] != n.ID || keys[1] != n.ID || keys[2] != later.ID || later.ID == n.ID {
		t.Errorf("groupKeys = %q, want %q twice, then %q", keys, n.ID, later.ID)
	}
}

func TestFingerprintMatchesAlertmanager(t *testing.T) {
	for _, labels := range []map[string]string{
		{},
		alerts.Labels("web1", "cpu"),
		alerts.Labels("db-2.example.com", "processes:python3"),
		{"a": "1", "b": "2"},
		{"a": "12"},
	} {
		ls := model.LabelSet{}
		for k, v := range labels {
			ls[model.LabelName(k)] = model.LabelValue(v)
		}
		if got, want := fingerprint(labels), ls.Fingerprint().String(); got != want {
			t.Errorf("fingerprint(%v) = %s, Alertmanager's is %s", labels, got, want)
		}
	}
}

func TestWebhookCommonLabels(t *testing.T) {
	n := *alerts.NewNotification(t0, []alerts.Alert{
		alert("web1", "cpu", monitor.AlertResolved, "cpu ok", t0, t0),
		alert("web2", "cpu", monitor.AlertResolved, "cpu ok", t0, t0),
	}, false)
	p := genericPayload(n, "r")
	if p.Status != "resolved" {
		t.Errorf("status = %q, want resolved", p.Status)
	}
	want := map[string]string{"alertname": "CPUHigh", "severity": "warning", "rule": "cpu"}
	if len(p.CommonLabels) != len(want) || p.CommonLabels["alertname"] != "CPUHigh" || p.CommonLabels["rule"] != "cpu" || p.CommonLabels["severity"] != "warning" {
		t.Errorf("commonLabels = %v, want %v", p.CommonLabels, want)
	}
	if p.CommonAnnotations["summary"] != "cpu ok" {
		t.Errorf("commonAnnotations = %v", p.CommonAnnotations)
	}
}

func TestWebhookDingTalk(t *testing.T) {
	h := startHookServer(t, http.StatusOK, `{"errcode":0,"errmsg":"ok"}`)
	w := newTestWebhook(t, inventory.Webhook{URLEnv: "DING_URL", Kind: "dingtalk", SecretEnv: "DING_SECRET"},
		map[string]string{"DING_URL": h.URL + "/robot/send?access_token=tok123", "DING_SECRET": "SECabc"}, t0)
	if err := w.Notify(context.Background(), sample()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	r := h.only(t)
	if r.Query.Get("access_token") != "tok123" {
		t.Errorf("access_token = %q, want it kept", r.Query.Get("access_token"))
	}
	ts := r.Query.Get("timestamp")
	if ts != strconv.FormatInt(t0.UnixMilli(), 10) {
		t.Errorf("timestamp = %q, want milliseconds %d", ts, t0.UnixMilli())
	}
	mac := hmac.New(sha256.New, []byte("SECabc"))
	mac.Write([]byte(ts + "\n" + "SECabc"))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); r.Query.Get("sign") != want {
		t.Errorf("sign = %q, want %q", r.Query.Get("sign"), want)
	}
	m := decode[dingtalkMessage](t, r.Body)
	if m.MsgType != "markdown" || m.Markdown.Title != "[collector] 3 alerts firing on web1, web7 (+1 resolved)" {
		t.Errorf("message = %+v", m)
	}
	golden(t, "payload-dingtalk.json", indent(t, r.Body))
}

func TestWebhookWeCom(t *testing.T) {
	h := startHookServer(t, http.StatusOK, `{"errcode":0,"errmsg":"ok"}`)
	w := newTestWebhook(t, inventory.Webhook{URL: h.URL + "/cgi-bin/webhook/send?key=k1", Kind: "wecom"}, nil, t0)
	if err := w.Notify(context.Background(), sample()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	r := h.only(t)
	m := decode[wecomMessage](t, r.Body)
	if m.MsgType != "markdown" || !strings.Contains(m.Markdown.Content, "**web7** down") {
		t.Errorf("message = %+v", m)
	}
	golden(t, "payload-wecom.json", indent(t, r.Body))
}

func TestWebhookFeishu(t *testing.T) {
	h := startHookServer(t, http.StatusOK, `{"code":0,"data":{},"msg":"success"}`)
	w := newTestWebhook(t, inventory.Webhook{URL: h.URL + "/open-apis/bot/v2/hook/xyz", Kind: "feishu", SecretEnv: "FS_SECRET"},
		map[string]string{"FS_SECRET": "fsecret"}, t0)
	if err := w.Notify(context.Background(), sample()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	r := h.only(t)
	m := decode[feishuMessage](t, r.Body)
	if m.Timestamp != strconv.FormatInt(t0.Unix(), 10) {
		t.Errorf("timestamp = %q, want seconds %d", m.Timestamp, t0.Unix())
	}
	mac := hmac.New(sha256.New, []byte(m.Timestamp+"\n"+"fsecret"))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); m.Sign != want {
		t.Errorf("sign = %q, want %q", m.Sign, want)
	}
	if m.MsgType != "text" || !strings.HasPrefix(m.Content.Text, "[collector] 3 alerts firing") {
		t.Errorf("message = %+v", m)
	}
	golden(t, "payload-feishu.json", indent(t, r.Body))

	// Without a secret there is no timestamp or sign.
	unsigned := newTestWebhook(t, inventory.Webhook{URL: h.URL, Kind: "feishu"}, nil, t0)
	_, body, err := unsigned.request(sample(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte(`"sign"`)) || bytes.Contains(body, []byte(`"timestamp"`)) {
		t.Errorf("unsigned body carries a signature: %s", body)
	}
}

func TestWebhookSlack(t *testing.T) {
	h := startHookServer(t, http.StatusOK, "ok")
	w := newTestWebhook(t, inventory.Webhook{URL: h.URL + "/services/T0/B0/xyz", Kind: "slack"}, nil, t0)
	n := *alerts.NewNotification(t0, []alerts.Alert{
		alert("<web1>", "cpu", monitor.AlertFiring, "a & b", t0, time.Time{}),
	}, false)
	if err := w.Notify(context.Background(), n); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	m := decode[slackMessage](t, h.only(t).Body)
	if !strings.Contains(m.Text, "*&lt;web1&gt;* cpu: a &amp; b") || strings.Contains(m.Text, "<web1>") {
		t.Errorf("text not escaped for Slack:\n%s", m.Text)
	}
	golden(t, "payload-slack.json", indent(t, mustJSON(t, slackPayload(sample()))))
}

func TestWebhookAnswers(t *testing.T) {
	tests := []struct {
		name      string
		kind      string
		status    int
		body      string
		wantErr   bool
		permanent bool
	}{
		{"generic 200", "generic", 200, "", false, false},
		{"generic 204", "generic", 204, "", false, false},
		{"generic 500", "generic", 500, "oops", true, false},
		{"generic 503", "generic", 503, "", true, false},
		{"generic 400", "generic", 400, "bad", true, true},
		{"generic 404", "generic", 404, "", true, true},
		{"generic 408", "generic", 408, "", true, false},
		{"generic 429", "generic", 429, "", true, false},
		{"generic 302", "generic", 302, "", true, false},
		{"dingtalk ok", "dingtalk", 200, `{"errcode":0,"errmsg":"ok"}`, false, false},
		{"dingtalk keyword", "dingtalk", 200, `{"errcode":310000,"errmsg":"keywords not in content"}`, true, true},
		{"dingtalk too fast", "dingtalk", 200, `{"errcode":130101,"errmsg":"send too fast"}`, true, false},
		{"wecom bad key", "wecom", 200, `{"errcode":93000,"errmsg":"invalid webhook url"}`, true, true},
		{"wecom rate", "wecom", 200, `{"errcode":45009,"errmsg":"api freq out of limit"}`, true, false},
		{"feishu ok", "feishu", 200, `{"StatusCode":0,"StatusMessage":"success","code":0,"msg":"success"}`, false, false},
		{"feishu sign", "feishu", 200, `{"code":19021,"msg":"sign match fail"}`, true, true},
		{"feishu rate", "feishu", 200, `{"code":11232,"msg":"frequency limited"}`, true, false},
		{"feishu old style", "feishu", 200, `{"StatusCode":9499,"StatusMessage":"Bad Request"}`, true, true},
		{"slack ok", "slack", 200, "ok", false, false},
		{"slack invalid", "slack", 400, "invalid_payload", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHookServer(t, tt.status, tt.body)
			w := newTestWebhook(t, inventory.Webhook{URL: h.URL + "/hook?token=SECRET-TOKEN", Kind: tt.kind}, nil, t0)
			err := w.Notify(context.Background(), sample())
			if (err != nil) != tt.wantErr || IsPermanent(err) != tt.permanent {
				t.Fatalf("Notify = %v (permanent %v), want error %v, permanent %v", err, IsPermanent(err), tt.wantErr, tt.permanent)
			}
			if err != nil && strings.Contains(err.Error(), "SECRET-TOKEN") {
				t.Errorf("error leaks the URL token: %v", err)
			}
		})
	}
}

func TestWebhookUnreachable(t *testing.T) {
	addr := freeAddr(t)
	w := newTestWebhook(t, inventory.Webhook{Name: "down", URL: "http://" + addr + "/robot/send?access_token=SECRET-TOKEN", Kind: "dingtalk"}, nil, t0)
	err := w.Notify(context.Background(), sample())
	if err == nil || IsPermanent(err) {
		t.Fatalf("Notify = %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), "SECRET-TOKEN") {
		t.Errorf("error leaks the URL token: %v", err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Errorf("error %v does not carry the *url.Error", err)
	}
}

// TestNewWebhookErrors covers what NewWebhook checks itself: the values
// only the environment supplies. Every rule on the file is inventory's
// (TestChannelsAcceptWhatParseAccepts).
func TestNewWebhookErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  inventory.Webhook
		env  map[string]string
		want string
	}{
		{"url env unset", inventory.Webhook{URLEnv: "HOOK_URL", Kind: "wecom"}, nil, "HOOK_URL (url_env) is empty or unset"},
		{"url env not http", inventory.Webhook{URLEnv: "HOOK_URL", Kind: "wecom"}, map[string]string{"HOOK_URL": "ftp://example.com/SECRET-TOKEN"},
			"the value of environment variable HOOK_URL (url_env) is not an http(s) URL"},
		{"secret env unset", inventory.Webhook{URL: "https://oapi.dingtalk.com/robot/send?access_token=x", Kind: "dingtalk", SecretEnv: "DING_SECRET"}, nil, "DING_SECRET (secret_env)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWebhook(tt.cfg, env(tt.env), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewWebhook = %v, want an error containing %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "SECRET-TOKEN") {
				t.Errorf("error leaks the URL: %v", err)
			}
		})
	}
}

// parseAlerts returns the [alerts] of an inventory written as src.
func parseAlerts(t *testing.T, src string) inventory.Alerts {
	t.Helper()
	inv, err := inventory.Parse(strings.NewReader(src), "servers.toml")
	if err != nil {
		t.Fatalf("parse:\n%s\n%v", src, err)
	}
	return inv.Alerts
}

func notifierNames(ns []Notifier) []string {
	var names []string
	for _, n := range ns {
		names = append(names, n.Name())
	}
	return names
}

// TestFromConfig checks that a channel that cannot be set up is left out
// without shifting the names of the others: the outbox keeps entries per
// channel name, so a shifted name would send them to another channel.
func TestFromConfig(t *testing.T) {
	cfg := parseAlerts(t, `
[alerts.email]
server = "smtp.example.com:587"
from = "c@example.com"
to = ["ops@example.com"]

[[alerts.webhook]]
kind = "wecom"
url_env = "MISSING"

[[alerts.webhook]]
kind = "wecom"
url_env = "WECOM_URL"

[[alerts.webhook]]
name = "team"
url = "https://example.com/a"

[[alerts.webhook]]
name = "team"
url = "https://example.com/b"
kind = "slack"

[[alerts.webhook]]
url = "https://oapi.dingtalk.com/robot/send?access_token=x"
kind = "dingtalk"
`)
	got, err := FromConfig(cfg, env(map[string]string{"WECOM_URL": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"}))
	if err == nil || !strings.Contains(err.Error(), "webhook 1 (wecom)") || !strings.Contains(err.Error(), "MISSING") {
		t.Errorf("FromConfig error = %v, want one naming webhook 1 and MISSING", err)
	}
	want := []string{"email", "wecom #2", "team", "team #4", "dingtalk oapi.dingtalk.com"}
	if names := notifierNames(got); !slices.Equal(names, want) {
		t.Errorf("names = %q, want %q", names, want)
	}

	// With the variable set, the same channels keep the same names.
	got, err = FromConfig(cfg, env(map[string]string{"MISSING": "https://qyapi.weixin.qq.com/x", "WECOM_URL": "https://qyapi.weixin.qq.com/y"}))
	if err != nil {
		t.Fatal(err)
	}
	if names := notifierNames(got); !slices.Equal(names, append([]string{"email", "wecom"}, want[1:]...)) {
		t.Errorf("names with every variable set = %q", names)
	}

	// A configuration built by hand with one name twice: the second is
	// left out, not merged into the first.
	got, err = FromConfig(inventory.Alerts{Webhooks: []inventory.Webhook{
		{Name: "x", URL: "https://example.com/a", Kind: "generic"},
		{Name: "x", URL: "https://example.com/b", Kind: "generic"},
	}}, env(nil))
	if err == nil || !strings.Contains(err.Error(), `channel "x": another channel has this name`) || len(got) != 1 {
		t.Errorf("FromConfig with a name twice = %q, %v", notifierNames(got), err)
	}
}

// TestChannelsAcceptWhatParseAccepts checks that the rules are one: every
// [alerts] section inventory.Parse accepts sets up with every variable it
// names set, and what the channels used to refuse at start is refused by
// Parse, so by every command.
func TestChannelsAcceptWhatParseAccepts(t *testing.T) {
	vars := map[string]string{
		"HOOK_URL": "https://hooks.example.com/x", "SECRET": "s", "SMTP_PASSWORD": "p",
	}
	accepted := []string{
		"[alerts.email]\nserver = \"smtp.example.com:587\"\nfrom = \"c@example.com\"\nto = [\"ops@example.com\"]\n",
		"[alerts.email]\nserver = \"[2001:db8::25]:465\"\nfrom = \"c@example.com\"\nto = \"ops@example.com\"\ntls = \"tls\"\nusername = \"u\"\npassword_env = \"SMTP_PASSWORD\"\n",
		"[alerts.email]\nserver = \"localhost:25\"\nfrom = \"C <c@example.com>\"\nto = [\"a@example.com\", \"B <b@example.com>\"]\ntls = \"none\"\n",
	}
	for _, kind := range inventory.WebhookKinds {
		accepted = append(accepted,
			fmt.Sprintf("[[alerts.webhook]]\nkind = %q\nurl_env = \"HOOK_URL\"\n", kind),
			fmt.Sprintf("[[alerts.webhook]]\nkind = %q\nurl = \"http://127.0.0.1:9000/hook\"\n", kind))
	}
	for _, kind := range inventory.SigningKinds {
		accepted = append(accepted, fmt.Sprintf("[[alerts.webhook]]\nkind = %q\nurl_env = \"HOOK_URL\"\nsecret_env = \"SECRET\"\n", kind))
	}
	for _, src := range accepted {
		ns, err := FromConfig(parseAlerts(t, src), env(vars))
		if err != nil || len(ns) != 1 {
			t.Errorf("Parse accepts\n%s\nbut FromConfig = %q, %v", src, notifierNames(ns), err)
		}
	}

	refused := map[string]string{
		"secret_env on wecom":      "[[alerts.webhook]]\nkind = \"wecom\"\nurl_env = \"HOOK_URL\"\nsecret_env = \"SECRET\"\n",
		"secret_env on slack":      "[[alerts.webhook]]\nkind = \"slack\"\nurl_env = \"HOOK_URL\"\nsecret_env = \"SECRET\"\n",
		"secret_env on generic":    "[[alerts.webhook]]\nurl_env = \"HOOK_URL\"\nsecret_env = \"SECRET\"\n",
		"SMTP port not a number":   "[alerts.email]\nserver = \"smtp.example.com:smtp\"\nfrom = \"c@example.com\"\nto = [\"ops@example.com\"]\n",
		"SMTP port out of range":   "[alerts.email]\nserver = \"smtp.example.com:0\"\nfrom = \"c@example.com\"\nto = [\"ops@example.com\"]\n",
		"SMTP server without host": "[alerts.email]\nserver = \":465\"\nfrom = \"c@example.com\"\nto = [\"ops@example.com\"]\ntls = \"tls\"\n",
	}
	for name, src := range refused {
		if _, err := inventory.Parse(strings.NewReader(src), "servers.toml"); err == nil {
			t.Errorf("%s: Parse accepts\n%s", name, src)
		}
	}
}

func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("indent %s: %v", b, err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
