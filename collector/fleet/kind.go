package fleet

import (
	"context"
	"errors"

	"github.com/crawlerfleet/collector/collector/pull"
	"github.com/crawlerfleet/collector/collector/remote"
	"github.com/crawlerfleet/collector/monitor"
)

// Classify returns the kind of a probe failure. A failure that is none of
// the typed ones (a connection that dropped mid-command, say) is
// unreachable: the server did not stay reachable.
func Classify(err error) monitor.Kind {
	var (
		unknown *remote.UnknownHostError
		changed *remote.HostKeyChangedError
		auth    *remote.AuthError
		dial    *remote.DialError
		probe   *pull.ProbeError
		config  *ConfigError
		keyFile *remote.KeyFileError
		cert    *remote.HostCertError
	)
	switch {
	case err == nil:
		return monitor.KindOK
	case errors.As(err, &config), errors.As(err, &keyFile):
		return monitor.KindConfig
	case errors.As(err, &unknown), errors.As(err, &changed), errors.As(err, &cert):
		return monitor.KindHostKey
	case errors.As(err, &auth):
		return monitor.KindAuth
	case errors.Is(err, context.DeadlineExceeded):
		return monitor.KindTimeout
	case errors.As(err, &dial):
		return monitor.KindUnreachable
	case errors.As(err, &probe):
		return monitor.KindProbe
	}
	return monitor.KindUnreachable
}
