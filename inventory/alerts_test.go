package inventory

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAlertsConfig(t *testing.T) {
	inv := mustParse(t, "testdata/alerts.toml")
	base := AlertRules{
		CPU:    Threshold{Above: 90, Clear: 80, For: 3},
		Memory: Threshold{Above: 85, Clear: 85, For: 3}, // the default clear (85) still fits
		Disk:   Threshold{Above: 0, Clear: 0, For: 1},   // off
		Load:   Threshold{Above: 1.5, Clear: 1.5, For: 2},
		// The default clear (64) still fits, the memory pressure's (5) too.
		Swap:           Threshold{Above: 500, Clear: 64, For: 2},
		MemoryPressure: Threshold{Above: 15, Clear: 5, For: 3},
		CPUPressure:    Threshold{Above: 0, Clear: 0, For: 5}, // off
		FD:             Threshold{Above: 80, Clear: 70, For: 1},
		DiskFull:       DiskFullRule{Within: 48 * time.Hour},
		Processes:      []ProcessRule{{Keyword: "python", Min: 5, Max: 200, For: 1}},
		Down:           DownRule{After: 5},
	}
	if !reflect.DeepEqual(inv.Alerts.Rules, base) {
		t.Errorf("[alerts] rules = %+v\nwant %+v", inv.Alerts.Rules, base)
	}
	if inv.Alerts.Repeat != 2*time.Hour {
		t.Errorf("repeat = %v", inv.Alerts.Repeat)
	}
	wantEmail := &Email{Server: "smtp.example.com:587", From: "collector@example.com",
		To: []string{"ops@example.com", "Crawler Team <crawl@example.com>"}, TLS: "starttls", Username: "collector", PasswordEnv: "SMTP_PASSWORD"}
	if !reflect.DeepEqual(inv.Alerts.Email, wantEmail) {
		t.Errorf("email = %+v\nwant %+v", inv.Alerts.Email, wantEmail)
	}
	wantHooks := []Webhook{
		{Name: "generic hooks.example.com", URL: "https://hooks.example.com/alertmanager", Kind: "generic"},
		{Name: "dingtalk", URLEnv: "DINGTALK_URL", Kind: "dingtalk", SecretEnv: "DINGTALK_SECRET"},
	}
	if !reflect.DeepEqual(inv.Alerts.Webhooks, wantHooks) {
		t.Errorf("webhooks = %+v\nwant %+v", inv.Alerts.Webhooks, wantHooks)
	}
	if got := mustServer(t, inv, "web1").Alerts; !reflect.DeepEqual(got, base) {
		t.Errorf("web1 inherits %+v\nwant %+v", got, base)
	}
	web2 := base
	web2.Memory = Threshold{Above: 95, Clear: 85, For: 2}
	web2.DiskFull = DiskFullRule{} // off
	web2.Processes = []ProcessRule{{Keyword: "scrapy", Min: 1, For: 1}}
	if got := mustServer(t, inv, "web2").Alerts; !reflect.DeepEqual(got, web2) {
		t.Errorf("web2 = %+v\nwant %+v", got, web2)
	}
}

func TestAlertsDefaultsWithoutSection(t *testing.T) {
	inv := mustParse(t, "testdata/minimal.toml")
	if !reflect.DeepEqual(inv.Alerts.Rules, DefaultAlertRules()) || inv.Alerts.Repeat != DefaultAlertRepeat {
		t.Errorf("alerts = %+v", inv.Alerts)
	}
	if inv.Alerts.Email != nil || len(inv.Alerts.Webhooks) != 0 {
		t.Errorf("channels without configuration: %+v", inv.Alerts)
	}
	if d := DefaultAlertRules().Disk; d.Above != 90 {
		t.Errorf("default disk threshold = %v, want 90", d.Above)
	}
}

func TestProbeKeywords(t *testing.T) {
	inv := mustParse(t, "testdata/alerts.toml")
	tests := []struct {
		server string
		want   []string
	}{
		{"web1", []string{"python"}},           // the rule's keyword is already counted
		{"web2", []string{"python", "scrapy"}}, // the server's rule adds one
	}
	for _, tt := range tests {
		if got := mustServer(t, inv, tt.server).ProbeKeywords(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ProbeKeywords() = %q, want %q", tt.server, got, tt.want)
		}
	}
}

func TestHTTPConfig(t *testing.T) {
	inv, err := Parse(strings.NewReader("[http]\nlisten = \"127.0.0.1:9108\"\ntoken_env = \"COLLECTOR_HTTP_TOKEN\"\n"), "http.toml")
	if err != nil {
		t.Fatal(err)
	}
	if want := (HTTP{Listen: "127.0.0.1:9108", TokenEnv: "COLLECTOR_HTTP_TOKEN"}); inv.HTTP != want {
		t.Errorf("HTTP = %+v, want %+v", inv.HTTP, want)
	}
	if inv, err := Parse(strings.NewReader(""), "empty.toml"); err != nil || inv.HTTP.Listen != "" {
		t.Errorf("no [http]: %+v, %v; want off", inv.HTTP, err)
	}
}
