package inventory

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// testEnv is a machine where home is /home/tester and the OS user is tester.
var testEnv = environment{
	home: func() (string, error) { return "/home/tester", nil },
	user: func() (string, error) { return "tester", nil },
}

// parseFile parses path with testEnv, naming it by its base name.
func parseFile(t *testing.T, path string) (*Inventory, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return parse(f, filepath.Base(path), testEnv)
}

func mustParse(t *testing.T, path string) *Inventory {
	t.Helper()
	inv, err := parseFile(t, path)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return inv
}

// origins returns a server's Origins: address's, set's, and the built-in
// default for every other setting.
func origins(address string, set map[string]string) map[string]string {
	o := map[string]string{"address": address}
	for _, k := range []string{"user", "port", "identity_file", "jump", "known_hosts", "identities_only", "certificate_file"} {
		o[k] = BuiltinOrigin
		if v, ok := set[k]; ok {
			o[k] = v
		}
	}
	return o
}

func mustServer(t *testing.T, inv *Inventory, name string) Server {
	t.Helper()
	s, ok := inv.Server(name)
	if !ok {
		t.Fatalf("no server %q in %s", name, inv.Path)
	}
	return s
}

// badConfigs maps each file in testdata/bad to substrings its error must hold.
var badConfigs = map[string][]string{
	"syntax.toml":               {"syntax.toml:3:28: strings cannot contain newlines"},
	"unknown_server_key.toml":   {"unknown key 'adress' in server 'web1' (unknown_server_key.toml:4); did you mean 'address'?"},
	"misspelt_required.toml":    {"unknown key 'adress' in server 'web1' (misspelt_required.toml:3); did you mean 'address'?"},
	"unknown_defaults_key.toml": {"unknown key 'usr' in [defaults] (unknown_defaults_key.toml:2); did you mean 'user'?"},
	"bad_alerts.toml": {
		"cpu.above 120 is out of range in [alerts] (bad_alerts.toml:2)",
		"memory.clear 90 is not between 0 and above 80 in [alerts] (bad_alerts.toml:3)",
		"down.after 0 is below 1 in [alerts] (bad_alerts.toml:4)",
		"processes 1 has no keyword in [alerts] (bad_alerts.toml:6)", "processes 1 has neither min nor max in [alerts] (bad_alerts.toml:6)",
	},
	"bad_channels.toml": {
		`email.server "smtp.example.com" is not host:port`, `email.from "not an address" is not an e-mail address`,
		"email.to lists no recipient", `email.tls "ssl" is not starttls, tls or none`, "email.username is set without password_env",
		`webhook 1 has kind "teams" in [alerts] (bad_channels.toml:8)`, "webhook 1 needs exactly one of url and url_env in [alerts] (bad_channels.toml:8)",
	},
	"bad_alert_entries.toml": {
		"processes 2 has min 5 above max 3 in [alerts] (bad_alert_entries.toml:9)",
		`webhook 2 has kind "teams" in [alerts] (bad_alert_entries.toml:17)`,
		"webhook 2 needs exactly one of url and url_env in [alerts] (bad_alert_entries.toml:17)",
		"processes 2 has no keyword in server 'web1' (bad_alert_entries.toml:30)",
		"processes 1 has for 0, below 1 in server 'web2' (bad_alert_entries.toml:37)",
	},
	"bad_server_alerts.toml":   {"unknown key 'abve'", "did you mean 'above'?"},
	"alerts_password.toml":     {"unknown key 'password'", "password_env"},
	"http_open.toml":           {`listen "0.0.0.0:9108" is reachable from other machines but no token_env is set in [http] (http_open.toml:2)`},
	"bad_http.toml":            {`listen "9108" is not host:port in [http] (bad_http.toml:2)`, "token_env is not an environment variable name in [http] (bad_http.toml:3)"},
	"unknown_table.toml":       {"unknown table [metrics] (unknown_table.toml:5)"},
	"bad_server_schedule.toml": {`bad schedule "every minute"`, "in server 'web1' (bad_server_schedule.toml:4)", "@every 30s"},
	"bad_schedule.toml": {
		`bad schedule "61 * * * *"`, "in [schedule] (bad_schedule.toml:2)",
		`unknown time zone "Mars/Olympus" in [schedule] (bad_schedule.toml:3)`,
		"concurrency 0 is below 1 in [schedule] (bad_schedule.toml:4)",
	},
	"bad_resolution.toml": {
		`resolution 10s is not shorter than the 10s between ticks of schedule "@every 10s" in [schedule] (bad_resolution.toml:3)`,
		"resolution 50ms is below 100ms in server 'web1' (bad_resolution.toml:8)",
		`resolution 10s is not shorter than the 1s between ticks of schedule "@every 1s" in server 'web2' (bad_resolution.toml:13)`,
		"resolution -1s is negative in server 'web3' (bad_resolution.toml:18)",
	},
	"bad_spool_max.toml":  {`invalid size "lots"`, "(bad_spool_max.toml:2)"},
	"store_password.toml": {"uri holds a password in [store] (store_password.toml:2)", "COLLECTOR_MONGO_URI"},
	"bad_store.toml": {
		`uri "postgres://db.example.com" is not a MongoDB URI in [store] (bad_store.toml:2)`,
		"retention 10m0s is shorter than an hour in [store] (bad_store.toml:3)",
		`database name "a.b" is not usable in [store] (bad_store.toml:4)`,
	},
	// Exactly 2^63 ns: it once wrapped around to a negative duration, and
	// the error said it was too short.
	"huge_duration.toml":    {`bad value for 'rollup_retention': duration "106751.99116730064d" is too long in [store] (huge_duration.toml:2)`},
	"unknown_top_key.toml":  {"unknown top-level key 'user' (unknown_top_key.toml:1); 'user' can only be set in [defaults] or [[server]]"},
	"misspelled_table.toml": {"unknown table [[servers]] (misspelled_table.toml:1); did you mean [[server]]?"},
	"single_bracket_server.toml": {
		"wrong type for 'server': found a table (single_bracket_server.toml:1); write [[server]] (double brackets)",
	},
	"tags_in_defaults.toml": {"unknown key 'tags' in [defaults] (tags_in_defaults.toml:2); 'tags' can only be set in [[server]]"},
	"password.toml": {
		"unknown key 'password' in server 'web1' (password.toml:4); secrets are never written in this file",
		"SSH password login is not supported", "identity_passphrase_env",
	},
	"passphrase.toml": {
		"unknown key 'identity_passphrase' in [defaults] (passphrase.toml:3); secrets are never written in this file: put it in an environment variable and set identity_passphrase_env to the variable's name",
	},
	"token.toml": {"unknown top-level key 'token' (token.toml:1); secrets are never written in this file: put it in an environment variable"},
	"passphrase_env_value.toml": {
		"identity_passphrase_env is not an environment variable name in server 'web1' (passphrase_env_value.toml:4)",
		"never to the passphrase itself",
	},
	"duplicate_name.toml": {"duplicate name in server 'web1' (duplicate_name.toml:6); 'web1' is already used at duplicate_name.toml:1; server names must be unique"},
	"missing_name.toml":   {"no name in server #2 (missing_name.toml:5); add name = "},
	"empty_name.toml":     {"empty name in server #1 (empty_name.toml:2)"},
	"bad_name.toml": {
		`server name "web 1" is not usable on the command line in server 'web 1' (bad_name.toml:2); use only letters, digits, '.', '-' and '_'`,
	},
	"dash_name.toml":          {`server name "-web1" is not usable on the command line`, "do not start with '-'"},
	"bad_tag.toml":            {`tag "eu west" is not usable on the command line in server 'web1' (bad_tag.toml:4)`},
	"missing_address.toml":    {"no address in server 'web1' (missing_address.toml:1); add address = "},
	"empty_address.toml":      {`bad address "": empty address in server 'web1' (empty_address.toml:3)`},
	"address_with_user.toml":  {`bad address "root@web1.example.com": "root@web1.example.com" contains a user name`},
	"address_bad_port.toml":   {`bad address "web1.example.com:99999": port "99999" after ':' is not a number from 1 to 65535 in server 'web1' (address_bad_port.toml:3)`},
	"address_bad_ipv6.toml":   {`"fe80::zz" is not an IPv6 address`},
	"port_range.toml":         {"port 70000 is out of range in server 'web1' (port_range.toml:4); use a port from 1 to 65535"},
	"port_zero_defaults.toml": {"port 0 is out of range in [defaults] (port_zero_defaults.toml:2)"},
	"address_port_conflict.toml": {
		`address "web1.example.com:2222" has port 2222 but port = 22 in server 'web1' (address_port_conflict.toml:4); remove one of them`,
	},
	"wrong_type_port.toml": {"wrong type for 'port': found a string in server 'web1' (wrong_type_port.toml:4); write a number without quotes"},
	"wrong_type_identity_file.toml": {
		"bad value for 'identity_file': found an integer, want a string or an array of strings in server 'web1' (wrong_type_identity_file.toml:4)",
	},
	// The second server's timeout must not steal the line: BurntSushi/toml
	// alone would report line 9.
	"bad_duration.toml":             {`bad value for 'timeout': invalid duration "5x" in server 'web1' (bad_duration.toml:4); write a number and a unit`},
	"bad_duration_defaults.toml":    {`bad value for 'sample': invalid duration "one second" in [defaults] (bad_duration_defaults.toml:2)`},
	"duration_not_string.toml":      {`bad value for 'timeout': invalid duration "30" in server 'web1' (duration_not_string.toml:4)`},
	"timeout_zero.toml":             {"timeout 0s is not positive in server 'web1' (timeout_zero.toml:4)"},
	"connect_timeout_negative.toml": {"connect_timeout -5s is not positive in [defaults] (connect_timeout_negative.toml:2)"},
	"sample_negative.toml":          {"sample -1s is negative in server 'web1' (sample_negative.toml:4)"},
	"connect_longer_than_timeout.toml": {
		"connect_timeout 1m0s is longer than timeout 30s in server 'web1' (connect_longer_than_timeout.toml:4)",
	},
	"sample_longer_than_timeout.toml": {
		"sample 20s does not fit in timeout 20s less the 1s kept for the probe to report in [defaults] (sample_longer_than_timeout.toml:2); " +
			`timeout covers the whole run, connecting and CPU sample included; make it longer than sample + 1s, e.g. timeout = "31s", or shorten sample`,
	},
	// The probe gets timeout less ProbeReserve: a sample shorter than the
	// timeout may still not fit.
	"sample_reserve.toml": {
		"sample 9s does not fit in timeout 10s less the 1s kept for the probe to report in server 'web1' (sample_reserve.toml:4); " +
			`timeout covers the whole run, connecting and CPU sample included; make it longer than sample + 1s, e.g. timeout = "20s", or shorten sample`,
	},
	// The master is not connected to: no connect_timeout in the suggestion.
	"local_sample_reserve.toml": {
		`sample 4.5s does not fit in timeout 5s less the 1s kept for the probe to report in server 'master' (local_sample_reserve.toml:5)`, `e.g. timeout = "6.5s"`,
	},
	"empty_keyword.toml":       {"keyword 2 is empty in server 'web1' (empty_keyword.toml:4)"},
	"empty_identity_file.toml": {"empty identity_file in [defaults] (empty_identity_file.toml:2)"},
	"tilde_user.toml":          {`bad known_hosts: "~bob/.ssh/known_hosts": only ~ and ~/... are expanded, not ~user in server 'web1' (tilde_user.toml:4); write the full path`},
	"relative_probe_dir.toml":  {`probe_dir "collector" is relative in server 'web1' (relative_probe_dir.toml:4)`},
	"empty_user.toml":          {"empty user in [defaults] (empty_user.toml:2)"},
	"jump_self.toml":           {"jump names the server itself in server 'web1' (jump_self.toml:4)"},
	"jump_cycle.toml":          {"jump cycle: a -> b -> a in server 'a' (jump_cycle.toml:4)"},
	"jump_cycle_long.toml":     {"jump cycle: a -> b -> c -> a in server 'a' (jump_cycle_long.toml:9)"},
	"jump_cycle_defaults.toml": {
		"jump cycle: bastion -> outer -> bastion in server 'bastion' (jump_cycle_defaults.toml:7)",
		`the jump of 'outer' comes from [defaults]; set jump = "" in it`,
	},
	"jump_to_local_server.toml": {`jump 'master' names the master itself (address = "local") in server 'web1' (jump_to_local_server.toml:8)`},
	"jump_local.toml":           {`jump = "local" names the master itself in server 'web1' (jump_local.toml:4)`},
	"jump_default_local.toml":   {`jump = "local" names the master itself in [defaults] (jump_default_local.toml:2)`},
	"local_with_jump.toml": {
		`the master itself (address = "local") cannot be reached through a jump host in server 'master' (local_with_jump.toml:8); remove jump`,
	},
	"jump_bad.toml": {`jump "ops@gw.example.com:0" is neither a server name nor [user@]host[:port]`},
	"many_errors.toml": {
		"unknown key 'usr' in [defaults] (many_errors.toml:3)",
		"port 0 is out of range in [defaults] (many_errors.toml:4)",
		`invalid duration "soon" in server 'web1' (many_errors.toml:9)`,
		"port 70000 is out of range in server 'web1' (many_errors.toml:14)",
		"unknown key 'adress' in server 'web1' (many_errors.toml:15)",
	},
	"inline_server.toml": {"unknown key 'adress' in a [[server]] entry (inline_server.toml:1); did you mean 'address'?"},

	// Control characters in anything that reaches the remote command line,
	// the SSH connection or a file name.
	"control_keyword.toml": {
		`keyword "py\x00thon" contains a control character (NUL) in server 'web1' (control_keyword.toml:4); ` +
			`remove it (a TOML escape such as \u0000, \n or \t writes one): keywords are passed to the probe on the remote command line`,
	},
	"control_defaults_keyword.toml": {`keyword "scrapy\n" contains a control character (LF (newline)) in [defaults] (control_defaults_keyword.toml:2)`},
	// The name is not repeated raw in the place: the entry is "#1".
	"control_name.toml": {
		`server name "web\x001" contains a control character (NUL) in server #1 (control_name.toml:2)`, "server names are used in file names",
		`keyword "bad\x7f" contains a control character (DEL) in server #1 (control_name.toml:4)`,
	},
	"control_probe_dir.toml": {`probe_dir "/var/tmp/a\tb" contains a control character (HT (tab)) in server 'web1' (control_probe_dir.toml:4)`},
	"control_user.toml":      {`user "ops\r" contains a control character (CR (carriage return)) in server 'web1' (control_user.toml:4)`},
	"control_address.toml":   {`address "web1\x7f.example.com" contains a control character (DEL) in server 'web1' (control_address.toml:3)`},
	"control_paths.toml": {
		`identity_file "~/.ssh/id\x01" contains a control character (SOH) in [defaults] (control_paths.toml:2)`,
		`known_hosts "/etc/ssh/known\nhosts" contains a control character (LF (newline)) in [defaults] (control_paths.toml:3)`,
		`jump "gw\x1b.example.com" contains a control character (ESC) in [defaults] (control_paths.toml:4)`,
		`data_dir "/var/lib/collector\x00" contains a control character (NUL) in [store] (control_paths.toml:7)`,
	},
	"control_process_keyword.toml": {
		`processes 1 keyword "py\x1bthon" contains a control character (ESC) in [alerts] (control_process_keyword.toml:4)`,
		`processes 1 keyword "node\x00" contains a control character (NUL) in server 'web1' (control_process_keyword.toml:11)`,
	},
	"control_webhook_name.toml": {`webhook 1 name "team\nchannel" contains a control character (LF (newline)) in [alerts] (control_webhook_name.toml:1)`},
	"dot_name.toml": {
		`server name "." is not usable in server '.' (dot_name.toml:2); server names are used in file names and URLs`,
		`server name ".." is not usable in server '..' (dot_name.toml:6)`,
	},

	// What the alert channels would refuse at start, refused by every command.
	"email_port.toml":    {`email.server "smtp.example.com:smtp" has port "smtp", not a number from 1 to 65535 in [alerts] (email_port.toml:1)`},
	"email_no_host.toml": {`email.server ":465" has no host name before the port in [alerts] (email_no_host.toml:1)`},
	"secret_env_unsigned.toml": {
		"webhook 1 has secret_env, but wecom webhooks do not sign requests in [alerts] (secret_env_unsigned.toml:1); remove secret_env: only dingtalk and feishu robots take a signing secret",
		"webhook 2 has secret_env, but slack webhooks do not sign requests in [alerts] (secret_env_unsigned.toml:6)",
	},
	"bad_saturation_alerts.toml": {
		"memory_pressure.above 150 is out of range in [alerts] (bad_saturation_alerts.toml:2); write a percent from 1 to 100",
		"swap.above -1 is out of range in [alerts] (bad_saturation_alerts.toml:3); write pages swapped in and out per second",
		"disk_full.within 10m0s is under an hour in [alerts] (bad_saturation_alerts.toml:4)",
		"fd.clear 99 is not between 0 and above 95 in server 'web1' (bad_saturation_alerts.toml:10)",
		`disk_full has no within in server 'web1' (bad_saturation_alerts.toml:10); say how far ahead to warn, e.g. disk_full = { within = "24h" }`,
	},
	"webhook_name_taken.toml": {
		`webhook 3 would be named "team #3", as "team" is taken, but webhook 1 has that name in [alerts] (webhook_name_taken.toml:9); give each webhook its own name`,
	},
}

func TestParseBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		if _, ok := badConfigs[filepath.Base(path)]; !ok {
			t.Errorf("%s has no expected error in badConfigs", path)
		}
	}
	for name, want := range badConfigs {
		t.Run(strings.TrimSuffix(name, ".toml"), func(t *testing.T) {
			inv, err := parseFile(t, filepath.Join("testdata/bad", name))
			if err == nil {
				t.Fatalf("no error; got %d servers", len(inv.Servers))
			}
			if inv != nil {
				t.Errorf("got an inventory along with the error")
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain\n\t%s\ngot:\n\t%s", w, strings.ReplaceAll(err.Error(), "\n", "\n\t"))
				}
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("errors.As(%T, *Error) = false", err)
			} else if e.File != name {
				t.Errorf("Error.File = %q, want %q", e.File, name)
			}
		})
	}
}

// TestMisspeltRequiredKey: the misspelling is the one error, not "no
// address" (or "no name") printed before it.
func TestMisspeltRequiredKey(t *testing.T) {
	_, err := parseFile(t, "testdata/bad/misspelt_required.toml")
	want := "unknown key 'adress' in server 'web1' (misspelt_required.toml:3); did you mean 'address'?\n" +
		"unknown key 'nmae' in server #2 (misspelt_required.toml:6); did you mean 'name'?"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

// TestErrorFormat pins the exact shape of the messages.
func TestErrorFormat(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // the lines of the error, in order
	}{
		{
			name: "unknown keys",
			src: `[defaults]
usr = "monitor"

[[server]]
name = "web1"
description = "front"
adress = "web1.example.com"
`,
			want: []string{
				"unknown key 'usr' in [defaults] (servers.toml:2); did you mean 'user'?",
				// No "no address" before the misspelling that causes it (issue 15).
				"unknown key 'adress' in server 'web1' (servers.toml:7); did you mean 'address'?",
			},
		},
		{
			name: "syntax",
			src:  "[[server]]\nname = \"web1\"\n\n\n\n\n  =\n",
			want: []string{"servers.toml:7:3: unexpected '=': key name appears blank"},
		},
		{
			name: "no suggestion when nothing is close",
			src:  "[[server]]\nname = \"web1\"\naddress = \"web1\"\nflavour = \"vanilla\"\n",
			want: []string{"unknown key 'flavour' in server 'web1' (servers.toml:4)"},
		},
		{
			name: "alias",
			src:  "[[server]]\nname = \"web1\"\nhostname = \"web1\"\n",
			// Alone: "no address" before it would hide the cause (issue 15).
			want: []string{
				"unknown key 'hostname' in server 'web1' (servers.toml:3); did you mean 'address'?",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(strings.NewReader(tt.src), "servers.toml", testEnv)
			if err == nil {
				t.Fatal("no error")
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, tt.want) {
				t.Errorf("got:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
		})
	}
}

// TestTimesOfLocalServer checks that connect_timeout, which a server with
// address = "local" never uses, is not held against its timeout, while the
// same settings on an SSH server are an error.
func TestTimesOfLocalServer(t *testing.T) {
	tests := []struct {
		name, server string
		wantErr      string // "" for none
	}{
		{"local, default connect_timeout", `address = "local"` + "\ntimeout = \"5s\"", ""},
		{"local, own connect_timeout", `address = "local"` + "\ntimeout = \"5s\"\nconnect_timeout = \"1m\"", ""},
		{"local, only connect_timeout", `address = "local"` + "\nconnect_timeout = \"1m\"", ""},
		{"ssh, default connect_timeout", `address = "web1"` + "\ntimeout = \"5s\"",
			"connect_timeout 10s is longer than timeout 5s in server 'x' (servers.toml:4)"},
		{"ssh, own connect_timeout", `address = "web1"` + "\nconnect_timeout = \"1m\"",
			"connect_timeout 1m0s is longer than timeout 30s in server 'x' (servers.toml:4)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "[[server]]\nname = \"x\"\n" + tt.server + "\n"
			_, err := parse(strings.NewReader(src), "servers.toml", testEnv)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("parse:\n%s\nerror: %v", src, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("parse:\n%s\nerror: %v\nwant one containing %q", src, err, tt.wantErr)
			}
		})
	}
}

func TestSyntaxErrorHasColumn(t *testing.T) {
	_, err := parseFile(t, "testdata/bad/syntax.toml")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want an *Error", err)
	}
	if e.Line != 3 || e.Col != 28 {
		t.Errorf("position = %d:%d, want 3:28", e.Line, e.Col)
	}
	if !regexp.MustCompile(`^syntax\.toml:3:28: \S`).MatchString(err.Error()) {
		t.Errorf("error %q does not start with syntax.toml:3:28: ", err)
	}
}

func TestErrorsAreSortedAndStructured(t *testing.T) {
	_, err := parseFile(t, "testdata/bad/many_errors.toml")
	if err == nil {
		t.Fatal("no error")
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %T does not hold a list", err)
	}
	var lines []int
	for _, e := range joined.Unwrap() {
		var ie *Error
		if !errors.As(e, &ie) {
			t.Fatalf("%T is not an *Error", e)
		}
		lines = append(lines, ie.Line)
	}
	if want := []int{3, 4, 9, 14, 15}; !slices.Equal(lines, want) {
		t.Errorf("lines = %v, want %v", lines, want)
	}
	var first *Error
	errors.As(err, &first)
	want := &Error{File: "many_errors.toml", Line: 3, Table: "defaults", Key: "usr", Msg: "unknown key 'usr'", Fix: "did you mean 'user'?"}
	if !reflect.DeepEqual(first, want) {
		t.Errorf("first error = %+v, want %+v", first, want)
	}
}

func TestBuiltinDefaults(t *testing.T) {
	inv := mustParse(t, "testdata/minimal.toml")
	want := Server{
		Name:           "web1",
		Address:        "web1.example.com",
		Port:           22,
		User:           "tester",
		KnownHosts:     "/home/tester/.ssh/known_hosts",
		Keywords:       []string{"python"},
		ProbeDir:       "~/.cache/collector",
		Timeout:        30 * time.Second,
		ConnectTimeout: 10 * time.Second,
		Sample:         time.Second,
		Schedule:       DefaultCron,
		Resolution:     DefaultResolution,
		Alerts:         DefaultAlertRules(),
		Line:           1,
		Origins:        origins("server entry, minimal.toml:3", nil),
	}
	if len(inv.Servers) != 1 || !reflect.DeepEqual(inv.Servers[0], want) {
		t.Errorf("servers = %+v\nwant [%+v]", inv.Servers, want)
	}
	if inv.Path != "minimal.toml" {
		t.Errorf("Path = %q", inv.Path)
	}
}

func TestDefaultsFlowIntoServers(t *testing.T) {
	inv := mustParse(t, "testdata/defaults.toml")
	wantDefaults := Defaults{
		User:                  "monitor",
		Port:                  2200,
		IdentityFiles:         []string{"/home/tester/.ssh/fleet_ed25519", "/etc/collector/id_rsa"},
		IdentityPassphraseEnv: "FLEET_KEY_PASSPHRASE",
		KnownHosts:            "/home/tester/.ssh/fleet_known_hosts",
		Jump:                  "gw.example.com",
		Keywords:              []string{"python", "node"},
		ProbeDir:              "/var/tmp/collector",
		Timeout:               45 * time.Second,
		ConnectTimeout:        5 * time.Second,
		Sample:                2 * time.Second,
	}
	if !reflect.DeepEqual(inv.Defaults, wantDefaults) {
		t.Errorf("Defaults = %+v\nwant %+v", inv.Defaults, wantDefaults)
	}
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	wantSchedule := Schedule{Cron: "*/5 * * * *", Location: shanghai, Concurrency: 64, Splay: 5 * time.Second, Grace: time.Minute, Resolution: 2 * time.Second}
	if !reflect.DeepEqual(inv.Schedule, wantSchedule) {
		t.Errorf("Schedule = %+v\nwant %+v", inv.Schedule, wantSchedule)
	}
	wantStore := Store{
		URI:             "mongodb://db1.example.com:27017,db2.example.com:27017/?replicaSet=rs0",
		Database:        "fleet",
		DataDir:         "/var/lib/collector",
		Retention:       30 * 24 * time.Hour,
		RollupRetention: 2 * 365 * 24 * time.Hour,
		SpoolMax:        512 << 20,
	}
	if inv.Store != wantStore {
		t.Errorf("Store = %+v\nwant %+v", inv.Store, wantStore)
	}
	tests := []struct {
		name string
		want Server
	}{
		{"inherits", Server{
			Name:                  "inherits",
			Address:               "inherits.example.com",
			Port:                  2200,
			User:                  "monitor",
			IdentityFiles:         []string{"/home/tester/.ssh/fleet_ed25519", "/etc/collector/id_rsa"},
			IdentityPassphraseEnv: "FLEET_KEY_PASSPHRASE",
			KnownHosts:            "/home/tester/.ssh/fleet_known_hosts",
			Jump:                  "gw.example.com",
			Keywords:              []string{"python", "node"},
			ProbeDir:              "/var/tmp/collector",
			Timeout:               45 * time.Second,
			ConnectTimeout:        5 * time.Second,
			Sample:                2 * time.Second,
			Schedule:              "*/5 * * * *",
			Resolution:            2 * time.Second,
			Alerts:                DefaultAlertRules(),
			Line:                  15,
			Origins: origins("server entry, defaults.toml:17", map[string]string{"user": "[defaults], defaults.toml:3", "port": "[defaults], defaults.toml:4",
				"identity_file": "[defaults], defaults.toml:5", "known_hosts": "[defaults], defaults.toml:7", "jump": "[defaults], defaults.toml:13"}),
		}},
		{"overrides", Server{
			Name:                  "overrides",
			Description:           "sets every key",
			Address:               "overrides.example.com",
			Port:                  22,
			User:                  "root",
			IdentityFiles:         []string{"/home/tester/.ssh/id_root"},
			IdentityPassphraseEnv: "ROOT_KEY_PASSPHRASE",
			KnownHosts:            "/etc/ssh/ssh_known_hosts",
			Jump:                  "",
			Keywords:              []string{},
			Tags:                  []string{"db", "eu"},
			ProbeDir:              "~/collector",
			Timeout:               2 * time.Minute,
			ConnectTimeout:        20 * time.Second,
			Sample:                0,
			Schedule:              "@every 30s",
			Resolution:            0,
			Alerts:                DefaultAlertRules(),
			Line:                  19,
			Origins: origins("server entry, defaults.toml:22", map[string]string{"user": "server entry, defaults.toml:23", "port": "server entry, defaults.toml:24",
				"identity_file": "server entry, defaults.toml:25", "known_hosts": "server entry, defaults.toml:27", "jump": "server entry, defaults.toml:34"}),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustServer(t, inv, tt.name); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
	// Servers must not share slices with the defaults or each other.
	inv.Servers[0].Keywords[0] = "changed"
	inv.Servers[0].IdentityFiles[0] = "changed"
	if inv.Defaults.Keywords[0] != "python" || inv.Defaults.IdentityFiles[0] == "changed" {
		t.Errorf("a server shares slices with Defaults: %+v", inv.Defaults)
	}
}

func TestIPv6Addresses(t *testing.T) {
	inv := mustParse(t, "testdata/ipv6.toml")
	tests := []struct {
		name, address string
		port          int
		hostPort      string
	}{
		{"bracketed-port", "::1", 2222, "[::1]:2222"},
		{"bare", "::1", 22, "[::1]:22"},
		{"bare-with-port-key", "2001:db8::10", 2022, "[2001:db8::10]:2022"},
		{"bracketed", "2001:db8::11", 22, "[2001:db8::11]:22"},
		{"zone", "fe80::1%eth0", 22, "[fe80::1%eth0]:22"},
		{"ipv4-port", "192.0.2.7", 2200, "192.0.2.7:2200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, inv, tt.name)
			if s.Address != tt.address || s.Port != tt.port || s.HostPort() != tt.hostPort {
				t.Errorf("Address, Port, HostPort() = %q, %d, %q; want %q, %d, %q",
					s.Address, s.Port, s.HostPort(), tt.address, tt.port, tt.hostPort)
			}
			if s.IsLocal() {
				t.Error("IsLocal() = true")
			}
		})
	}
}

func TestRoute(t *testing.T) {
	inv := mustParse(t, "testdata/jumps.toml")
	fleetKey := []string{"/home/tester/.ssh/fleet"}
	tests := []struct {
		name string
		want []string // "name user@host:port" per hop
	}{
		{"master", []string{"master monitor@local:2200"}},
		{"bastion", []string{"bastion ops@bastion.example.com:2200"}},
		{"inner", []string{"bastion ops@bastion.example.com:2200", "inner monitor@10.0.0.2:2200"}},
		{"deep", []string{"bastion ops@bastion.example.com:2200", "inner monitor@10.0.0.2:2200", "deep monitor@10.1.0.3:2200"}},
		{"via-host", []string{"admin@gw.example.com:2022 admin@gw.example.com:2022", "via-host monitor@10.2.0.4:2200"}},
		{"via-bare-host", []string{"gw2.example.com monitor@gw2.example.com:2200", "via-bare-host monitor@10.2.0.5:2200"}},
		{"via-ipv6", []string{"[2001:db8::1]:2222 monitor@[2001:db8::1]:2222", "via-ipv6 monitor@10.2.0.6:2200"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustServer(t, inv, tt.name)
			hops, err := inv.Route(s)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range hops {
				got = append(got, h.Name+" "+h.User+"@"+h.HostPort())
				if !h.IsLocal() && !slices.Equal(h.IdentityFiles, fleetKey) {
					t.Errorf("hop %s: IdentityFiles = %q, want %q", h.Name, h.IdentityFiles, fleetKey)
				}
				if h.KnownHosts != "/home/tester/.ssh/known_hosts" || h.ConnectTimeout != 10*time.Second {
					t.Errorf("hop %s: KnownHosts, ConnectTimeout = %q, %s; want the defaults", h.Name, h.KnownHosts, h.ConnectTimeout)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("route = %q\nwant    %q", got, tt.want)
			}
			if !reflect.DeepEqual(hops[len(hops)-1], s) {
				t.Errorf("last hop = %+v, want the server itself", hops[len(hops)-1])
			}
		})
	}
}

func TestRouteRejectsCycleOutsideParse(t *testing.T) {
	inv := mustParse(t, "testdata/jumps.toml")
	// A Server built by hand, not checked by Parse, jumping through itself via inner.
	inv.Servers[inv.byName["bastion"]].Jump = "inner"
	_, err := inv.Route(mustServer(t, inv, "inner"))
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("Route = %v, want a cycle error", err)
	}
}

func TestDefaultJump(t *testing.T) {
	inv := mustParse(t, "testdata/default_jump.toml")
	for name, want := range map[string]string{"master": "", "bastion": "", "inner": "bastion", "direct": ""} {
		if got := mustServer(t, inv, name).Jump; got != want {
			t.Errorf("%s: Jump = %q, want %q", name, got, want)
		}
	}
	hops, err := inv.Route(mustServer(t, inv, "inner"))
	if err != nil || len(hops) != 2 || hops[0].Name != "bastion" {
		t.Errorf("Route(inner) = %v, %v; want bastion, inner", hops, err)
	}
}

func TestSelect(t *testing.T) {
	inv := mustParse(t, "testdata/jumps.toml")
	names := func(servers []Server) []string {
		var out []string
		for _, s := range servers {
			out = append(out, s.Name)
		}
		return out
	}
	tests := []struct {
		name    string
		args    []string
		want    []string
		wantErr []string
	}{
		{"all", nil, []string{"master", "bastion", "inner", "deep", "via-host", "via-bare-host", "via-ipv6"}, nil},
		{"given order", []string{"deep", "master"}, []string{"deep", "master"}, nil},
		{"duplicates once", []string{"inner", "inner"}, []string{"inner"}, nil},
		{"typo", []string{"inner", "bastoin"}, nil, []string{"unknown server 'bastoin' in jumps.toml; did you mean 'bastion'?"}},
		{"no close name", []string{"zzzzzzzzzz"}, nil, []string{"unknown server 'zzzzzzzzzz' in jumps.toml; known servers: master, bastion, inner, deep, via-host, via-bare-host, via-ipv6"}},
		{"every unknown name", []string{"mastr", "dep"}, nil, []string{"'mastr'", "did you mean 'master'?", "'dep'", "did you mean 'deep'?"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := inv.Select(tt.args)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(names(got), tt.want) {
					t.Errorf("Select(%q) = %q, want %q", tt.args, names(got), tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Select(%q) = %q, want an error", tt.args, names(got))
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var u *UnknownServerError
			if !errors.As(err, &u) || !slices.Contains(tt.args, u.Name) || u.File != "jumps.toml" {
				t.Errorf("errors.As(*UnknownServerError) failed for %v", err)
			}
		})
	}
	all, _ := inv.Select(nil)
	all[0].Name = "changed"
	if inv.Servers[0].Name == "changed" {
		t.Error("Select(nil) returned the inventory's own slice")
	}
}

func TestHomeExpansion(t *testing.T) {
	src := `[defaults]
identity_file = "~"
known_hosts = "~/kh"

[[server]]
name = "a"
address = "a"
identity_file = ["~/.ssh/a", "/abs/b", "rel/c"]
`
	inv, err := parse(strings.NewReader(src), "servers.toml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := inv.Defaults.IdentityFiles, []string{"/home/tester"}; !slices.Equal(got, want) {
		t.Errorf("Defaults.IdentityFiles = %q, want %q", got, want)
	}
	s := inv.Servers[0]
	if want := []string{"/home/tester/.ssh/a", "/abs/b", "rel/c"}; !slices.Equal(s.IdentityFiles, want) {
		t.Errorf("IdentityFiles = %q, want %q", s.IdentityFiles, want)
	}
	if s.KnownHosts != "/home/tester/kh" {
		t.Errorf("KnownHosts = %q", s.KnownHosts)
	}

	noHome := environment{
		home: func() (string, error) { return "", errors.New("$HOME is not defined") },
		user: testEnv.user,
	}
	_, err = parse(strings.NewReader(src), "servers.toml", noHome)
	for _, w := range []string{
		`bad identity_file: expand ~ in "~": $HOME is not defined in [defaults] (servers.toml:2)`,
		`bad known_hosts: expand ~ in "~/kh": $HOME is not defined in [defaults] (servers.toml:3)`,
		`bad identity_file: expand ~ in "~/.ssh/a": $HOME is not defined in server 'a' (servers.toml:8)`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
	// Without any ~ the home directory is not needed.
	_, err = parse(strings.NewReader("[defaults]\nknown_hosts = \"/etc/kh\"\n[[server]]\nname = \"a\"\naddress = \"a\"\n"), "servers.toml", noHome)
	if err != nil {
		t.Errorf("parse without ~: %v", err)
	}
}

func TestNoOSUser(t *testing.T) {
	noUser := environment{home: testEnv.home, user: func() (string, error) { return "", errors.New("unknown uid 1234") }}
	src := "[[server]]\nname = \"master\"\naddress = \"local\"\n[[server]]\nname = \"a\"\naddress = \"a\"\n"
	_, err := parse(strings.NewReader(src), "servers.toml", noUser)
	want := "no SSH user (unknown uid 1234) in server 'a' (servers.toml:4); set user = \"...\" in [defaults] or in this server"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	if _, err := parse(strings.NewReader("[defaults]\nuser = \"u\"\n"+src), "servers.toml", noUser); err != nil {
		t.Errorf("with user in [defaults]: %v", err)
	}

	// Many servers without a user: one error, at the first, naming them.
	many := src
	for _, name := range []string{"b", "c", "d", "e", "f"} {
		many += "[[server]]\nname = \"" + name + "\"\naddress = \"" + name + "\"\n"
	}
	many += "[[server]]\nname = \"g\"\naddress = \"g\"\nuser = \"ops\"\n"
	_, err = parse(strings.NewReader(many), "servers.toml", noUser)
	want = "no SSH user (unknown uid 1234) for 6 servers ('a', 'b', 'c', 'd', 'e', ...) in server 'a' (servers.toml:4); " +
		"set user = \"...\" in [defaults], or in each of them"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/minimal.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "servers.toml"), src, 0o600); err != nil {
		t.Fatal(err)
	}
	env := environment{home: func() (string, error) { return dir, nil }, user: testEnv.user}
	inv, err := load("~/servers.toml", env)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "servers.toml"); inv.Path != want {
		t.Errorf("Path = %q, want %q", inv.Path, want)
	}
	if len(inv.Servers) != 1 {
		t.Errorf("got %d servers, want 1", len(inv.Servers))
	}

	_, err = load(filepath.Join(dir, "missing.toml"), env)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("load(missing) = %v, want os.ErrNotExist", err)
	}
}

// TestExampleInventory keeps the documented example in the repository valid.
func TestExampleInventory(t *testing.T) {
	inv := mustParse(t, "../servers.toml")
	if len(inv.Servers) < 3 {
		t.Fatalf("example has %d servers", len(inv.Servers))
	}
	var local, jumped, tagged bool
	for _, s := range inv.Servers {
		local = local || s.IsLocal()
		tagged = tagged || len(s.Tags) > 0
		if s.Jump != "" {
			hops, err := inv.Route(s)
			if err != nil {
				t.Errorf("Route(%s): %v", s.Name, err)
			}
			jumped = jumped || len(hops) > 1
		}
	}
	if !local || !jumped || !tagged {
		t.Errorf("example should show a local server (%v), a jump (%v) and tags (%v)", local, jumped, tagged)
	}
	// The example comments every key it can hold.
	src, err := os.ReadFile("../servers.toml")
	if err != nil {
		t.Fatal(err)
	}
	var keys []schemaField
	for _, t := range []reflect.Type{reflect.TypeFor[settings](), reflect.TypeFor[rawServer](), reflect.TypeFor[storeTable](), reflect.TypeFor[scheduleTable]()} {
		keys = append(keys, tableKeys(t)...)
	}
	for _, f := range keys {
		if !regexp.MustCompile(`(?m)^#? ?` + f.key + ` = `).Match(src) {
			t.Errorf("../servers.toml does not show key %q", f.key)
		}
	}
}

// commentedExample matches a commented-out example line of ../servers.toml:
// a table header or a key = value.
var commentedExample = regexp.MustCompile(`(?m)^#[ \t]*(\[\[?[a-z_.]+\]\]?|[a-z_]+ = .*)$`)

// TestExampleInventoryUncommented parses ../servers.toml with every
// commented-out key and table header written in, so that the examples it
// shows keep parsing together as they stand.
func TestExampleInventoryUncommented(t *testing.T) {
	src, err := os.ReadFile("../servers.toml")
	if err != nil {
		t.Fatal(err)
	}
	n := len(commentedExample.FindAll(src, -1))
	if n < 30 {
		t.Fatalf("found %d commented examples in ../servers.toml; has the comment style changed?", n)
	}
	uncommented := commentedExample.ReplaceAll(src, []byte("$1"))
	if left := regexp.MustCompile(`(?m)^#\s*[a-z_]+\s*=.*$`).FindAll(uncommented, -1); len(left) > 0 {
		t.Errorf("commented keys not in the form \"# key = value\": %q", left)
	}
	inv, err := parse(bytes.NewReader(uncommented), "servers.toml", testEnv)
	if err != nil {
		t.Fatalf("../servers.toml with its examples uncommented:\n%v", err)
	}
	if d := inv.Defaults; d.Port != 22 || d.IdentityPassphraseEnv != "COLLECTOR_KEY_PASSPHRASE" || d.Jump != "bastion" || d.ProbeDir != "~/.cache/collector" {
		t.Errorf("defaults = %+v", d)
	}
	if hops, err := inv.Route(mustServer(t, inv, "crawler-01")); err != nil || len(hops) != 2 || hops[0].Name != "bastion" {
		t.Errorf("Route(crawler-01) = %v, %v; want through bastion, the default jump", hops, err)
	}
	if inv.Store.URI == "" || inv.Store.Database != "collector" || inv.Schedule.Location == nil || inv.Schedule.Location.String() != "UTC" {
		t.Errorf("store %+v, schedule %+v", inv.Store, inv.Schedule)
	}
	wantEmail := &Email{Server: "smtp.example.com:587", From: "collector@example.com", To: []string{"ops@example.com"},
		TLS: "starttls", Username: "collector", PasswordEnv: "COLLECTOR_SMTP_PASSWORD"}
	if !reflect.DeepEqual(inv.Alerts.Email, wantEmail) {
		t.Errorf("email = %+v\nwant %+v", inv.Alerts.Email, wantEmail)
	}
	wantHooks := []Webhook{
		{Name: "crawler group", Kind: "dingtalk", URLEnv: "COLLECTOR_DINGTALK_URL", SecretEnv: "COLLECTOR_DINGTALK_SECRET"},
		{Name: "generic alerts.example.com", Kind: "generic", URL: "https://alerts.example.com/hook"},
	}
	if !reflect.DeepEqual(inv.Alerts.Webhooks, wantHooks) {
		t.Errorf("webhooks = %+v\nwant %+v", inv.Alerts.Webhooks, wantHooks)
	}
	if want := (HTTP{Listen: "127.0.0.1:9108", TokenEnv: "COLLECTOR_HTTP_TOKEN"}); inv.HTTP != want {
		t.Errorf("http = %+v, want %+v", inv.HTTP, want)
	}
}

func TestPositionsFollowTOML(t *testing.T) {
	inv := mustParse(t, "testdata/quirks.toml")
	if len(inv.Servers) != 2 {
		t.Fatalf("got %d servers, want 2", len(inv.Servers))
	}
	if l0, l1 := inv.Servers[0].Line, inv.Servers[1].Line; l0 != 9 || l1 != 17 {
		t.Errorf("server lines = %d, %d; want 9, 17", l0, l1)
	}
	if got := inv.Servers[0].Description; got != "address = \"not a key\"\n[[server]]\n" {
		t.Errorf("description = %q", got)
	}
}
