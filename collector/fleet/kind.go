package fleet

import (
	"context"
	"errors"

	"github.com/crawlerfleet/collector/collector/pull"
	"github.com/crawlerfleet/collector/collector/remote"
)

// Kind is the kind of a failed attempt, as stored and alerted on.
type Kind string

// The kinds of failure. Each calls for a different fix, so alerts and
// reports keep them apart.
const (
	KindOK          Kind = ""
	KindUnreachable Kind = "unreachable" // TCP connect failed
	KindAuth        Kind = "auth"        // the server refused our keys
	KindHostKey     Kind = "hostkey"     // host key unknown or changed
	KindTimeout     Kind = "timeout"     // a step ran out of time
	KindProbe       Kind = "probe"       // the probe failed or printed garbage
	KindConfig      Kind = "config"      // the inventory entry cannot be used
	KindError       Kind = "error"       // anything else (a dropped connection)
)

// Classify returns the kind of a probe failure.
func Classify(err error) Kind {
	var (
		unknown *remote.UnknownHostError
		changed *remote.HostKeyChangedError
		auth    *remote.AuthError
		dial    *remote.DialError
		probe   *pull.ProbeError
		config  *ConfigError
	)
	switch {
	case err == nil:
		return KindOK
	case errors.As(err, &config):
		return KindConfig
	case errors.As(err, &unknown), errors.As(err, &changed):
		return KindHostKey
	case errors.As(err, &auth):
		return KindAuth
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.As(err, &dial):
		return KindUnreachable
	case errors.As(err, &probe):
		return KindProbe
	}
	return KindError
}
