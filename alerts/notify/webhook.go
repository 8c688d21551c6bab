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
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/inventory"
)

// maxResponse caps how much of a webhook's answer is read.
const maxResponse = 64 << 10

// Webhook posts each notification as JSON to a URL in the format of its
// kind: "generic" (Alertmanager's webhook payload), "dingtalk", "wecom",
// "feishu" or "slack".
//
// The outbox delivers at least once: a notification whose delivery was cut
// short (a crash after the post, a lost answer) is posted again. Only the
// generic kind lets the receiver tell: its groupKey is the notification's
// ID, the same in every delivery of one notification. The DingTalk, WeCom
// and Feishu robots and Slack's incoming webhooks take no idempotency key
// (their webhook formats have no field for one, and they deduplicate
// nothing themselves), so a redelivered notification shows there twice.
type Webhook struct {
	name   string
	kind   string
	url    string
	secret string
	client *http.Client
	now    func() time.Time
}

var _ Notifier = (*Webhook)(nil)

// NewWebhook returns the webhook channel of cfg, a webhook as
// inventory.Parse returns it: its kind, name, url and secret_env were
// checked there, by the same rules for every command. What only the
// environment supplies is checked here: the URL is cfg.URL, or the value of
// the environment variable cfg.URLEnv (by inventory.CheckWebhookURL); the
// signing secret is the value of cfg.SecretEnv; both are read through
// getenv now. client nil means one with DefaultTimeout.
func NewWebhook(cfg inventory.Webhook, getenv func(string) string, client *http.Client) (*Webhook, error) {
	raw := cfg.URL
	if cfg.URLEnv != "" {
		raw = getenv(cfg.URLEnv)
		if raw == "" {
			return nil, fmt.Errorf("environment variable %s (url_env) is empty or unset: export the webhook URL in it", cfg.URLEnv)
		}
		if err := inventory.CheckWebhookURL(raw); err != nil {
			return nil, fmt.Errorf("the value of environment variable %s (url_env) %w", cfg.URLEnv, err)
		}
	}
	w := &Webhook{name: cfg.Name, kind: cfg.Kind, url: raw, client: client, now: time.Now}
	if w.name == "" { // a configuration not made by inventory.Parse
		w.name = w.kind
	}
	if cfg.SecretEnv != "" {
		w.secret = getenv(cfg.SecretEnv)
		if w.secret == "" {
			return nil, fmt.Errorf("environment variable %s (secret_env) is empty or unset: export the robot's signing secret in it", cfg.SecretEnv)
		}
	}
	if w.client == nil {
		w.client = &http.Client{Timeout: DefaultTimeout}
	}
	return w, nil
}

// Name returns the webhook's name, as inventory.Parse decided it.
func (w *Webhook) Name() string { return w.name }

// Notify posts n. A 4xx answer (but 408, 425 and 429) and a robot's error
// code (but its rate limits) are permanent; 5xx answers and network
// failures are worth a retry.
func (w *Webhook) Notify(ctx context.Context, n alerts.Notification) error {
	target, body, err := w.request(n, w.now())
	if err != nil {
		return Permanent(fmt.Errorf("%s: %w", w.name, err))
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("%s: %w", w.name, redactURLError(err)))
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "collector")
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: post: %w", w.name, redactURLError(err))
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", w.name, err)
	}
	if err := checkStatus(resp.StatusCode, answer); err != nil {
		return fmt.Errorf("%s: %w", w.name, err)
	}
	if err := checkRobot(w.kind, answer); err != nil {
		return fmt.Errorf("%s: %w", w.name, err)
	}
	return nil
}

// request returns the URL to post to and the body for n at now.
func (w *Webhook) request(n alerts.Notification, now time.Time) (string, []byte, error) {
	target := w.url
	var payload any
	switch w.kind {
	case "generic":
		payload = genericPayload(n, w.name)
	case "dingtalk":
		payload = dingtalkPayload(n)
		if w.secret != "" {
			ts, sign := dingtalkSign(w.secret, now)
			target = addQuery(target, url.Values{"timestamp": {ts}, "sign": {sign}})
		}
	case "wecom":
		payload = wecomPayload(n)
	case "feishu":
		p := feishuPayload(n)
		if w.secret != "" {
			p.Timestamp, p.Sign = feishuSign(w.secret, now)
		}
		payload = p
	case "slack":
		payload = slackPayload(n)
	default:
		return "", nil, fmt.Errorf("unknown webhook kind %q", w.kind)
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return "", nil, fmt.Errorf("encode %s payload: %w", w.kind, err)
	}
	return target, body, nil
}

// An HTTPError is a webhook's answer outside 2xx.
type HTTPError struct {
	StatusCode int
	Body       string // the start of the answer, cleaned
}

// Error says which status the webhook answered, with the start of its body.
func (e *HTTPError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("answered %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Body)
}

// checkStatus returns nil for a 2xx status, a permanent *HTTPError for a
// 4xx other than 408, 425 and 429, and a retryable one otherwise.
func checkStatus(status int, body []byte) error {
	if status >= 200 && status < 300 {
		return nil
	}
	err := &HTTPError{StatusCode: status, Body: clean(string(body), 200)}
	if status >= 400 && status < 500 &&
		status != http.StatusRequestTimeout && status != http.StatusTooEarly && status != http.StatusTooManyRequests {
		return Permanent(err)
	}
	return err
}

// A RobotError is an error code in the 2xx answer of a DingTalk, WeCom or
// Feishu robot.
type RobotError struct {
	Kind    string
	Code    int
	Message string
}

// Error says which code and message the robot answered.
func (e *RobotError) Error() string {
	return fmt.Sprintf("%s robot refused the message: code %d: %s", e.Kind, e.Code, e.Message)
}

// robotRetryable are the robots' codes for "too many messages" and "busy";
// every other code means the robot refused this message (bad signature,
// missing keyword, invalid token, too long).
var robotRetryable = map[string][]int{
	"dingtalk": {-1, 130101}, // system busy; send too fast
	"wecom":    {-1, 45009},  // system busy; api freq out of limit
	"feishu":   {11232},      // frequency limited
}

// checkRobot reads the error code in a robot's answer: errcode for DingTalk
// and WeCom, code (or the older StatusCode) for Feishu. A missing code or a
// body that is not JSON counts as success, as the status was 2xx.
func checkRobot(kind string, body []byte) error {
	var code *int
	var msg string
	switch kind {
	case "dingtalk", "wecom":
		var r struct {
			ErrCode *int   `json:"errcode"`
			ErrMsg  string `json:"errmsg"`
		}
		if json.Unmarshal(body, &r) != nil {
			return nil
		}
		code, msg = r.ErrCode, r.ErrMsg
	case "feishu":
		var r struct {
			Code          *int   `json:"code"`
			Msg           string `json:"msg"`
			StatusCode    *int   `json:"StatusCode"`
			StatusMessage string `json:"StatusMessage"`
		}
		if json.Unmarshal(body, &r) != nil {
			return nil
		}
		code, msg = r.Code, r.Msg
		if code == nil || *code == 0 && r.StatusCode != nil && *r.StatusCode != 0 {
			code, msg = r.StatusCode, r.StatusMessage
		}
	default:
		return nil
	}
	if code == nil || *code == 0 {
		return nil
	}
	err := &RobotError{Kind: kind, Code: *code, Message: clean(msg, 200)}
	if slices.Contains(robotRetryable[kind], *code) {
		return err
	}
	return Permanent(err)
}

// dingtalkSign signs a DingTalk robot request: the timestamp in
// milliseconds, and base64(HMAC-SHA256(key secret, timestamp+"\n"+secret)).
// Both go into the URL as timestamp and sign.
func dingtalkSign(secret string, now time.Time) (timestamp, sign string) {
	timestamp = strconv.FormatInt(now.UnixMilli(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "\n" + secret))
	return timestamp, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// feishuSign signs a Feishu robot request: the timestamp in seconds, and
// base64(HMAC-SHA256(key timestamp+"\n"+secret, empty message)). Both go
// into the body as timestamp and sign.
func feishuSign(secret string, now time.Time) (timestamp, sign string) {
	timestamp = strconv.FormatInt(now.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(timestamp+"\n"+secret))
	return timestamp, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// addQuery appends params to the query of raw, keeping what is there (the
// robot's access_token).
func addQuery(raw string, params url.Values) string {
	sep := "?"
	if strings.Contains(raw, "?") {
		sep = "&"
	}
	return raw + sep + params.Encode()
}

// redactURLError drops the URL from err: robot and Slack URLs carry their
// tokens in the path or the query.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u, perr := url.Parse(ue.URL)
		host := "the webhook"
		if perr == nil && u.Host != "" {
			host = u.Scheme + "://" + u.Host + "/…"
		}
		return &url.Error{Op: ue.Op, URL: host, Err: ue.Err}
	}
	return err
}
