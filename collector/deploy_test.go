package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/crawlerfleet/collector/inventory"
)

// The deployment examples that deploy/ ships.
const (
	systemdUnit  = "../deploy/systemd/collector.service"
	kubernetesEx = "../deploy/kubernetes/collector.yaml"
)

// skipUnlessCI skips the test for want of tool, or fails it under CI
// (CI=true or COLLECTOR_TEST_DISALLOW_SKIP=1).
func skipUnlessCI(t *testing.T, tool string) {
	t.Helper()
	if os.Getenv("CI") == "true" || os.Getenv("COLLECTOR_TEST_DISALLOW_SKIP") == "1" {
		t.Fatalf("%s is not installed", tool)
	}
	t.Skipf("%s is not installed", tool)
}

// TestSystemdUnit checks the unit with systemd-analyze verify (its binary
// path swapped for one that exists here), and that its command line is
// one the collector takes.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile(systemdUnit)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ExecStart=(\S+) (.*)$`).FindSubmatch(unit)
	if m == nil || string(m[1]) != "/usr/local/bin/collector" {
		t.Fatalf("no ExecStart=/usr/local/bin/collector in the unit")
	}
	args := strings.Fields(string(m[2]))
	if !slices.Equal(args[len(args)-1:], []string{"run"}) || !strings.Contains(string(unit), "ExecReload=/bin/kill -HUP $MAINPID") {
		t.Errorf("the unit does not run `collector ... run` and reload with SIGHUP: %q", args)
	}
	// The command line parses: an inventory that does not exist is the
	// error, not a flag.
	var stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" },
		isTerminal: func(any) bool { return false }}
	if code := run(t.Context(), append(slices.Clone(args[:len(args)-1]), "run", "-h"), e); code != exitOK {
		t.Errorf("collector %s -h: exit %d\n%s", strings.Join(args, " "), code, stderr.String())
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		skipUnlessCI(t, "systemd-analyze")
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "collector.service")
	// Quoted, '%' doubled: systemd reads %d as a specifier, and the test
	// binary's directory may hold either.
	quoted := `"` + strings.ReplaceAll(bin, "%", "%%") + `"`
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, m[1], []byte(quoted)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	} else if err != nil {
		t.Fatal(err)
	}
}

// TestKubernetesExample: three replicas; the database URI from a Secret,
// into COLLECTOR_MONGO_URI; the servers.toml of the ConfigMap is valid,
// has [cluster], no [store] uri, and names only files that are mounted.
func TestKubernetesExample(t *testing.T) {
	f, err := os.Open(kubernetesEx)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type envVar struct {
		Name      string `yaml:"name"`
		ValueFrom struct {
			SecretKeyRef struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	type doc struct {
		Kind string            `yaml:"kind"`
		Data map[string]string `yaml:"data"`
		Spec struct {
			Replicas int `yaml:"replicas"`
			Template struct {
				Spec struct {
					Containers []struct {
						Args         []string `yaml:"args"`
						Env          []envVar `yaml:"env"`
						VolumeMounts []struct {
							MountPath string `yaml:"mountPath"`
						} `yaml:"volumeMounts"`
						LivenessProbe struct {
							HTTPGet struct {
								Path string `yaml:"path"`
							} `yaml:"httpGet"`
						} `yaml:"livenessProbe"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	docs := map[string]doc{}
	dec := yaml.NewDecoder(f)
	for {
		var d doc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", kubernetesEx, err)
		}
		docs[d.Kind] = d
	}
	dep, ok := docs["Deployment"]
	if !ok || dep.Spec.Replicas != 3 || len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want a Deployment of 3 replicas, one container: %+v", dep.Spec)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	secrets := map[string]string{}
	for _, v := range c.Env {
		if v.ValueFrom.SecretKeyRef.Name != "" {
			secrets[v.Name] = v.ValueFrom.SecretKeyRef.Name
		}
	}
	if secrets["COLLECTOR_MONGO_URI"] == "" {
		t.Errorf("COLLECTOR_MONGO_URI does not come from a Secret: %+v", c.Env)
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %q, want /healthz", c.LivenessProbe.HTTPGet.Path)
	}
	var mounts []string
	for _, m := range c.VolumeMounts {
		mounts = append(mounts, m.MountPath)
	}
	mounted := func(path string) bool {
		return slices.ContainsFunc(mounts, func(m string) bool { return strings.HasPrefix(path, m+"/") || path == m })
	}
	if len(c.Args) != 3 || c.Args[0] != "--config" || !mounted(c.Args[1]) || c.Args[2] != "run" {
		t.Errorf("container args %q, want --config <a mounted file> run", c.Args)
	}
	toml, ok := docs["ConfigMap"].Data[filepath.Base(c.Args[1])]
	if !ok {
		t.Fatalf("the ConfigMap has no %s", filepath.Base(c.Args[1]))
	}
	inv, err := inventory.Parse(strings.NewReader(toml), "servers.toml")
	if err != nil {
		t.Fatalf("the ConfigMap's servers.toml: %v", err)
	}
	if !inv.Cluster.Enabled || inv.Store.URI != "" {
		t.Errorf("servers.toml: [cluster] %v, [store] uri %q; want [cluster] and the URI from the environment", inv.Cluster.Enabled, inv.Store.URI)
	}
	if inv.HTTP.TokenEnv == "" || secrets[inv.HTTP.TokenEnv] == "" {
		t.Errorf("[http] token_env %q does not come from a Secret", inv.HTTP.TokenEnv)
	}
	for _, p := range append(slices.Clone(inv.Defaults.IdentityFiles), inv.Defaults.KnownHosts, inv.Store.DataDir) {
		if !mounted(p) {
			t.Errorf("%s is not on a mounted volume (%q)", p, mounts)
		}
	}
}
