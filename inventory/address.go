package inventory

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// splitHostPort splits an address as written in the file: "host",
// "host:2222", "10.0.0.1:2222", "::1", "[::1]" or "[::1]:2222". port is 0 when
// the address has none.
func splitHostPort(addr string) (host string, port int, err error) {
	if addr == "" {
		return "", 0, fmt.Errorf("empty address")
	}
	if strings.Contains(addr, "/") {
		return "", 0, fmt.Errorf("%q is a URL or path, not a host name or IP address", addr)
	}
	var portStr string
	switch {
	case strings.HasPrefix(addr, "[") && strings.HasSuffix(addr, "]"):
		host = addr[1 : len(addr)-1]
		if _, err := netip.ParseAddr(host); err != nil || !strings.Contains(host, ":") {
			return "", 0, fmt.Errorf("%q is not an IPv6 address", host)
		}
	case strings.HasPrefix(addr, "["):
		host, portStr, err = net.SplitHostPort(addr)
		if err != nil {
			return "", 0, fmt.Errorf("cannot split %q into [IPv6]:port", addr)
		}
		if _, err := netip.ParseAddr(host); err != nil {
			return "", 0, fmt.Errorf("%q is not an IPv6 address", host)
		}
	case strings.Count(addr, ":") > 1:
		if _, err := netip.ParseAddr(addr); err != nil {
			return "", 0, fmt.Errorf("%q has several ':' but is not an IPv6 address; write an IPv6 address with a port as [address]:port", addr)
		}
		host = addr
	case strings.Contains(addr, ":"):
		host, portStr, _ = strings.Cut(addr, ":")
	default:
		host = addr
	}
	if err := checkHost(host); err != nil {
		return "", 0, err
	}
	if portStr != "" || strings.HasSuffix(addr, ":") {
		port, err = strconv.Atoi(portStr)
		if err != nil || port < 1 || port > 65535 {
			return "", 0, fmt.Errorf("port %q after ':' is not a number from 1 to 65535", portStr)
		}
	}
	return host, port, nil
}

// checkHost rejects host names that cannot be dialled as written.
func checkHost(host string) error {
	switch {
	case host == "":
		return fmt.Errorf("no host name before the port")
	case strings.Contains(host, "@"):
		return fmt.Errorf("%q contains a user name", host)
	case strings.IndexFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		return fmt.Errorf("%q contains spaces or control characters", host)
	}
	return nil
}

// parseJump splits a jump host written as [user@]host[:port].
func parseJump(s string) (user, host string, port int, err error) {
	rest := s
	if i := strings.LastIndex(s, "@"); i >= 0 {
		user, rest = s[:i], s[i+1:]
		if user == "" {
			return "", "", 0, fmt.Errorf("no user name before '@' in %q", s)
		}
		if strings.IndexFunc(user, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '@' }) >= 0 {
			return "", "", 0, fmt.Errorf("user name %q contains spaces, control characters or '@'", user)
		}
	}
	host, port, err = splitHostPort(rest)
	if err != nil {
		return "", "", 0, err
	}
	return user, host, port, nil
}
