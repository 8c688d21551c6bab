package inventory

import (
	"fmt"
	"net"
)

// HTTP is the [http] table: where `collector run` serves its API, metrics
// and live page. Off unless Listen is set.
type HTTP struct {
	Listen   string // host:port; "" = off
	TokenEnv string // name of the environment variable holding the bearer token; "" = no token
}

type httpTable struct {
	Listen   *string `toml:"listen"`
	TokenEnv *string `toml:"token_env"`
}

// buildHTTP validates [http].
func (c *checker) buildHTTP(t httpTable) HTTP {
	p := place{table: "http", elem: -1}
	h := HTTP{Listen: deref(t.Listen), TokenEnv: deref(t.TokenEnv)}
	if h.Listen != "" {
		host, port, err := net.SplitHostPort(h.Listen)
		switch {
		case err != nil || port == "":
			c.report(p, "listen", fmt.Sprintf("listen %q is not host:port", h.Listen), `e.g. listen = "127.0.0.1:9108"`)
		case host == "" || (net.ParseIP(host) != nil && !net.ParseIP(host).IsLoopback()) || (net.ParseIP(host) == nil && host != "localhost"):
			if h.TokenEnv == "" {
				c.report(p, "listen", fmt.Sprintf("listen %q is reachable from other machines but no token_env is set", h.Listen),
					`set token_env = "COLLECTOR_HTTP_TOKEN" (and that variable), or listen on 127.0.0.1`)
			}
		}
	}
	if h.TokenEnv != "" && !envRE.MatchString(h.TokenEnv) {
		c.report(p, "token_env", "token_env is not an environment variable name", "set it to the variable's name, never to the token itself")
	}
	return h
}
