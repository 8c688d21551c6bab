package notify

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/crawlerfleet/collector/inventory"
	"github.com/crawlerfleet/collector/monitor"
)

func TestSendTest(t *testing.T) {
	h := startHookServer(t, http.StatusOK, "")
	hook := newTestWebhook(t, inventory.Webhook{Name: "hook", URL: h.URL, Kind: "generic"}, nil, t0)
	broken := &fakeNotifier{name: "broken", err: errors.New("refused")}
	results := SendTest(context.Background(), []Notifier{hook, broken}, t0)
	if len(results) != 2 || results[0].Channel != "hook" || results[0].Err != nil ||
		results[1].Channel != "broken" || results[1].Err == nil {
		t.Fatalf("results = %+v", results)
	}
	p := decode[amPayload](t, h.only(t).Body)
	if len(p.Alerts) != 1 || p.Alerts[0].Labels["test"] != "true" || !strings.Contains(p.Alerts[0].Annotations["summary"], "test notification") {
		t.Errorf("test payload = %+v", p)
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("400")
	err := Permanent(base)
	if !IsPermanent(err) || !errors.Is(err, base) || err.Error() != "400" {
		t.Errorf("Permanent(%v) = %v, IsPermanent %v", base, err, IsPermanent(err))
	}
	if wrapped := errors.Join(errors.New("x"), err); !IsPermanent(wrapped) {
		t.Error("IsPermanent misses a wrapped permanent error")
	}
	if IsPermanent(base) || IsPermanent(nil) || Permanent(nil) != nil {
		t.Error("plain errors and nil are not permanent")
	}
	n := NewTestNotification(t0)
	if !n.Test || len(n.Alerts) != 1 || n.Alerts[0].State != monitor.AlertFiring || n.ID == "" {
		t.Errorf("test notification = %+v", n)
	}
}
