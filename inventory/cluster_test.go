package inventory

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCluster(t *testing.T) {
	for _, tc := range []struct {
		file    string
		want    Cluster
		wantErr []string
	}{
		{file: "../minimal.toml", want: Cluster{Lease: DefaultLease}},
		{file: "empty_table.toml", want: Cluster{Enabled: true, Line: 8, Lease: DefaultLease}},
		{file: "full.toml", want: Cluster{Enabled: true, Line: 5, Member: "collector-a", Lease: 30 * time.Second}},
		{file: "bad_member_lease.toml", wantErr: []string{
			`member "a b" is not usable in [cluster] (bad_member_lease.toml:6)`,
			`lease 1s is shorter than 3s in [cluster] (bad_member_lease.toml:7)`,
		}},
		{file: "empty_member.toml", wantErr: []string{"empty member in [cluster] (empty_member.toml:6)"}},
		{file: "misspelt.toml", wantErr: []string{"unknown key 'membr' in [cluster] (misspelt.toml:6); did you mean 'member'?"}},
		{file: "lease_number.toml", wantErr: []string{"lease", "(lease_number.toml:6)"}},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".toml"), func(t *testing.T) {
			inv, err := parseFile(t, filepath.Join("testdata/cluster", tc.file))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; [cluster] = %+v", inv.Cluster)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not contain\n\t%s\ngot:\n\t%s", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if inv.Cluster != tc.want {
				t.Errorf("[cluster] = %+v, want %+v", inv.Cluster, tc.want)
			}
		})
	}
}
