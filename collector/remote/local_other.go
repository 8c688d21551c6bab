//go:build !unix

package remote

import (
	"os"
	"os/exec"
)

func killGroupOnCancel(*exec.Cmd) {}

func signalName(*os.ProcessState) string { return "" }
