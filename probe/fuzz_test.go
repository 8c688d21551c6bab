package main

import (
	"reflect"
	"testing"
)

// FuzzParseState reads any bytes as a state file, as a damaged or hostile
// one on a target would be: an error or a state, never a panic; and a state
// it accepts is written back as it was read.
func FuzzParseState(f *testing.F) {
	f.Add(appendState(nil, testState()))
	f.Add(appendState(nil, &procState{bootID: "b", keywords: []string{}, procs: []knownProc{}}))
	f.Add([]byte("collector-probe-state 1\nboot x\nprocs 1\n1 1 1 1 kc 1 -\nend\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseState(data)
		if err != nil {
			return
		}
		again, err := parseState(appendState(nil, s))
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("%q read as %+v; written back and read again: %+v, %v", data, s, again, err)
		}
		for _, p := range s.procs {
			for _, k := range p.keys {
				if k < 0 || k >= len(s.keywords) {
					t.Fatalf("%q: process %d matched keyword %d of %d", data, p.pid, k, len(s.keywords))
				}
			}
		}
	})
}

// FuzzProcParsers reads any bytes as each /proc file the probe parses: an
// error or a value, never a panic (a kernel's odd format, a truncated read).
func FuzzProcParsers(f *testing.F) {
	f.Add([]byte("1234 (python3 crawl) S 1 1234 1234 0 -1 4194560 100 0 0 0 77 12 0 0 20 0 3 0 35012 1000 250 18446744073709551615\n"))
	f.Add([]byte("cpu  10 0 5 100 0 0 0 0 0 0\ncpu0 10 0 5 100 0 0 0 0 0 0\nprocs_running 3\nprocs_blocked 0\n"))
	f.Add([]byte("MemTotal: 16000 kB\nMemFree: 1000 kB\nMemAvailable: 8000 kB\nBuffers: 10 kB\nCached: 100 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"))
	f.Add([]byte("some avg10=0.00 avg60=0.00 avg300=0.00 total=12\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=3\n"))
	f.Add([]byte("Inter-|   Receive\n face |bytes packets\n  eth0: 100 2 0 0 0 0 0 0 200 3 0 0 0 0 0 0\n"))
	f.Add([]byte("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"))
	f.Add([]byte("Name:\tsh\nUid:\t1000\t1000\t1000\t1000\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parseProcStat(data)
		parseMeminfo(data)
		parseLoadavg(data)
		parseUptime(data)
		parseVmstat(data)
		parsePSI(data)
		parseNetDev(data)
		parseFileNr(data)
		parseMountinfo(data)
		parsePidStat(data)
		parseStatusUID(data)
		parsePasswd(data, map[string]string{"0": "", "1000": ""})
		parseUint(data)
	})
}
