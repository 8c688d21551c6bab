package probebin

// The probe is static (no cgo), reproducible (-trimpath, no build id) and
// stripped, for every platform the collector supports.
//go:generate env CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath "-ldflags=-s -w -buildid=" -o builds/probe-linux-amd64 ../../probe
//go:generate env CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath "-ldflags=-s -w -buildid=" -o builds/probe-linux-arm64 ../../probe
