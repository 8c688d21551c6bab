//go:build tools

// This file pins the modules the packages under construction import, so that
// go.mod and go.sum are settled once while several packages are written at
// the same time. It is removed when every package imports its own.
package tools

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/FerretDB/FerretDB/ferretdb"
	_ "github.com/shirou/gopsutil/v3/cpu"
	_ "github.com/shirou/gopsutil/v3/disk"
	_ "github.com/shirou/gopsutil/v3/host"
	_ "github.com/shirou/gopsutil/v3/load"
	_ "github.com/shirou/gopsutil/v3/mem"
	_ "github.com/shirou/gopsutil/v3/process"
	_ "go.mongodb.org/mongo-driver/mongo"
	_ "golang.org/x/crypto/ssh"
	_ "golang.org/x/crypto/ssh/agent"
	_ "golang.org/x/crypto/ssh/knownhosts"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/term"
)
