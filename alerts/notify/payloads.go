package notify

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/crawlerfleet/collector/alerts"
	"github.com/crawlerfleet/collector/monitor"
)

// The generic kind posts Alertmanager's webhook payload (version 4), so
// receivers written for Alertmanager take it unchanged. A notification is
// one group holding every alert: groupLabels is empty, commonLabels and
// commonAnnotations hold what all alerts share.
//
// groupKey is the notification's ID (alerts.Notification.ID): the same in
// every delivery of one notification, so that a receiver can drop the copy
// the outbox posts again after a crash or a lost answer, and different for
// every other notification. (Alertmanager's own groupKey names the
// aggregation group and stays the same across its notifications; here each
// digest is a group of its own.)
//
//	{"version": "4", "groupKey": "<notification ID>", "truncatedAlerts": 0,
//	 "status": "firing", "receiver": "<webhook name>",
//	 "groupLabels": {}, "commonLabels": {...}, "commonAnnotations": {...},
//	 "externalURL": "",
//	 "alerts": [{"status": "firing", "labels": {"alertname": "CPUHigh",
//	   "server": "web1", "severity": "warning", "rule": "cpu"},
//	   "annotations": {"summary": "..."}, "startsAt": "...",
//	   "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
//	   "fingerprint": "<16 hex>"}]}
type amPayload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []amAlert         `json:"alerts"`
}

type amAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

func genericPayload(n alerts.Notification, receiver string) amPayload {
	p := amPayload{
		Version:     "4",
		GroupKey:    n.ID,
		Status:      "resolved",
		Receiver:    receiver,
		GroupLabels: map[string]string{},
		Alerts:      []amAlert{},
	}
	for i, a := range n.Alerts {
		labels := maps.Clone(a.Labels)
		if labels == nil {
			labels = alerts.Labels(a.Server, a.Rule)
		}
		if n.Test {
			labels["test"] = "true"
		}
		annotations := map[string]string{"summary": a.Summary}
		status := "firing"
		if a.State == monitor.AlertResolved {
			status = "resolved"
		} else {
			p.Status = "firing"
		}
		p.Alerts = append(p.Alerts, amAlert{
			Status:      status,
			Labels:      labels,
			Annotations: annotations,
			StartsAt:    a.StartsAt.UTC(),
			EndsAt:      a.EndsAt.UTC(),
			Fingerprint: fingerprint(labels),
		})
		if i == 0 {
			p.CommonLabels = maps.Clone(labels)
			p.CommonAnnotations = maps.Clone(annotations)
			continue
		}
		intersect(p.CommonLabels, labels)
		intersect(p.CommonAnnotations, annotations)
	}
	if p.CommonLabels == nil {
		p.CommonLabels = map[string]string{}
		p.CommonAnnotations = map[string]string{}
	}
	return p
}

// intersect deletes from common what other does not share.
func intersect(common, other map[string]string) {
	for k, v := range common {
		if ov, ok := other[k]; !ok || ov != v {
			delete(common, k)
		}
	}
}

// fingerprint is Alertmanager's: FNV-1a 64 over the labels sorted by name,
// each name and value followed by the byte 255, as 16 hex digits.
func fingerprint(labels map[string]string) string {
	h := fnv.New64a()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		h.Write([]byte(k))
		h.Write([]byte{255})
		h.Write([]byte(labels[k]))
		h.Write([]byte{255})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// Chat message limits, with room to spare: WeCom markdown takes 4096
// bytes, DingTalk about 20,000, a Feishu request 20 KB, a Slack text
// 40,000 characters (Slack asks for far less).
const (
	wecomMax    = 4000
	dingtalkMax = 18000
	feishuMax   = 18000
	slackMax    = 12000
)

// markdownStyle is the markdown DingTalk and WeCom robots render.
func markdownStyle(maxBytes int) chatStyle {
	return chatStyle{
		heading:  func(s string) string { return "#### " + s },
		section:  func(s string) string { return "**" + s + "**\n" }, // a blank line before the list
		item:     markdownItem,
		maxBytes: maxBytes,
	}
}

// dingtalkMessage is a DingTalk robot markdown message:
//
//	{"msgtype": "markdown", "markdown": {"title": "<subject>", "text": "<markdown>"}}
type dingtalkMessage struct {
	MsgType  string `json:"msgtype"`
	Markdown struct {
		Title string `json:"title"`
		Text  string `json:"text"`
	} `json:"markdown"`
}

func dingtalkPayload(n alerts.Notification) dingtalkMessage {
	d := newDigest(n)
	var m dingtalkMessage
	m.MsgType = "markdown"
	m.Markdown.Title = d.Subject
	m.Markdown.Text = d.renderChat(markdownStyle(dingtalkMax))
	return m
}

// wecomMessage is a WeCom (WeChat Work) group robot markdown message:
//
//	{"msgtype": "markdown", "markdown": {"content": "<markdown>"}}
type wecomMessage struct {
	MsgType  string `json:"msgtype"`
	Markdown struct {
		Content string `json:"content"`
	} `json:"markdown"`
}

func wecomPayload(n alerts.Notification) wecomMessage {
	var m wecomMessage
	m.MsgType = "markdown"
	m.Markdown.Content = newDigest(n).renderChat(markdownStyle(wecomMax))
	return m
}

// feishuMessage is a Feishu (Lark) custom robot text message, signed when
// the robot has a secret:
//
//	{"timestamp": "<unix seconds>", "sign": "<base64>",
//	 "msg_type": "text", "content": {"text": "<plain text>"}}
type feishuMessage struct {
	Timestamp string `json:"timestamp,omitempty"`
	Sign      string `json:"sign,omitempty"`
	MsgType   string `json:"msg_type"`
	Content   struct {
		Text string `json:"text"`
	} `json:"content"`
}

func feishuPayload(n alerts.Notification) feishuMessage {
	var m feishuMessage
	m.MsgType = "text"
	m.Content.Text = newDigest(n).renderChat(chatStyle{
		heading:  func(s string) string { return s },
		section:  func(s string) string { return s + ":" },
		item:     plainItem,
		maxBytes: feishuMax,
	})
	return m
}

// slackMessage is a Slack incoming-webhook message in mrkdwn:
//
//	{"text": "<mrkdwn>"}
type slackMessage struct {
	Text string `json:"text"`
}

func slackPayload(n alerts.Notification) slackMessage {
	return slackMessage{Text: newDigest(n).renderChat(chatStyle{
		heading: func(s string) string { return "*" + s + "*" },
		section: func(s string) string { return "_" + s + "_" },
		item: func(l line) string {
			return fmt.Sprintf("• *%s* %s: %s — %s", l.Server, l.Rule, l.Summary, l.When)
		},
		escape:   slackEscape,
		maxBytes: slackMax,
	})}
}

// slackEscape escapes the three characters Slack's mrkdwn treats as
// control characters.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
