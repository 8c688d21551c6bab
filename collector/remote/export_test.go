package remote

// WithKeepAliveAnswered makes the keepalive goroutine of the Client that
// Dial returns call f after it has handled each reply to a keepalive, so
// that a test driving keepalives with a fake clock knows when one was
// answered.
func WithKeepAliveAnswered(f func()) Option {
	return func(o *options) { o.keepAliveAnswered = f }
}
