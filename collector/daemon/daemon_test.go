package daemon

import (
	"slices"
	"strings"
	"testing"

	"github.com/crawlerfleet/collector/inventory"
)

func TestStartOnlyChanges(t *testing.T) {
	parse := func(text string) *inventory.Inventory {
		t.Helper()
		inv, err := inventory.Parse(strings.NewReader("[defaults]\nuser = \"u\"\n"+text), "servers.toml")
		if err != nil {
			t.Fatal(err)
		}
		return inv
	}
	base := "[[server]]\nname = \"a\"\naddress = \"local\"\n"
	tests := []struct {
		name, next string
		want       []string
	}{
		{"servers only", base + "[[server]]\nname = \"b\"\naddress = \"local\"\n", nil},
		{"alert rules only", base + "[alerts]\ndisk = { above = 80 }\n", nil},
		{"concurrency and splay", base + "[schedule]\nconcurrency = 8\nsplay = \"9s\"\n", []string{"[schedule] concurrency", "[schedule] splay"}},
		{"store and http", base + "[store]\ndatabase = \"other\"\n[http]\nlisten = \"127.0.0.1:9108\"\n", []string{"[store]", "[http]"}},
		{"alert channels apply at once", base + "[alerts]\nrepeat = \"1h\"\n[alerts.email]\nserver = \"smtp.example.com:587\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StartOnlyChanges(parse(base), parse(tt.next)); !slices.Equal(got, tt.want) {
				t.Errorf("StartOnlyChanges = %q, want %q", got, tt.want)
			}
		})
	}
}
