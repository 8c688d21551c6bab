package inventory

import (
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestScanPositions(t *testing.T) {
	src, err := os.ReadFile("testdata/quirks.toml")
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if _, err := toml.Decode(string(src), &v); err != nil {
		t.Fatalf("testdata/quirks.toml is not valid TOML: %v", err)
	}
	var got []string
	for _, e := range scanPositions(string(src)).entries {
		got = append(got, fmt.Sprintf("%d %s #%d", e.line, e.key, e.elem))
	}
	want := []string{
		"3 defaults #-1",
		"4 defaults.keywords #-1",
		"9 server #0",
		"10 server.name #0",
		"11 server.description #0",
		"15 server.address #0",
		"17 server #1",
		"18 server.name #1",
		"19 server.description #1",
		"20 server.address #1",
		"21 server.tags #1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n\t%q\nwant:\n\t%q", got, want)
	}
}

func TestScanPositionsKeyForms(t *testing.T) {
	src := `a.b = 1
"quoted.key" = { x = 1, y = [1, 2] }
'lit' = "s # not a comment"
"esc\u0041" = 1

[[t]]
k = """one
two"""
[t.sub]
x = 1
[[t]]
k = 'x'
[u]
v.w = 2
`
	var v any
	if _, err := toml.Decode(src, &v); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range scanPositions(src).entries {
		got = append(got, fmt.Sprintf("%d %q #%d", e.line, []string(e.key), e.elem))
	}
	want := []string{
		`1 ["a" "b"] #-1`,
		`2 ["quoted.key"] #-1`,
		`3 ["lit"] #-1`,
		`4 ["escA"] #-1`,
		`6 ["t"] #0`,
		`7 ["t" "k"] #0`,
		`9 ["t" "sub"] #0`,
		`10 ["t" "sub" "x"] #0`,
		`11 ["t"] #1`,
		`12 ["t" "k"] #1`,
		`13 ["u"] #-1`,
		`14 ["u" "v" "w"] #-1`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n\t%q\nwant:\n\t%q", got, want)
	}
}
