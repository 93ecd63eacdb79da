// Package teleport talks to the Teleport Auth Service: credentials (identity
// files re-read for short-lived Machine ID certificates, or a cert/key/CA
// triple), the connection, and the audit event sources (bulk export and the
// legacy search).
package teleport

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/gravitational/teleport/api/breaker"
	"github.com/gravitational/teleport/api/client"
	"google.golang.org/grpc"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/conf"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/logging"
	"github.com/teleport-fluent-bit/teleport-fluent-bit/metrics"
)

// maxRecvMsgSize lets single events well over gRPC's 4 MiB default through,
// instead of wedging the cursor on one big event.
const maxRecvMsgSize = 128 << 20

// Credentials are the loaded credentials plus, for identity files with
// refresh enabled, the re-reader that keeps them current.
type Credentials struct {
	client.Credentials
	dynamic *client.DynamicIdentityFileCreds
	path    string
	expiry  time.Time
}

// CertExpiry is the certificate's expiry time, zero when unknown.
func (c *Credentials) CertExpiry() time.Time { return c.expiry }

// LoadCredentials loads and checks the configured credentials so a missing,
// unreadable or expired file fails Init with a line naming it.
func LoadCredentials(cfg *conf.Config, now time.Time) (*Credentials, error) {
	if cfg.Identity != "" {
		if err := readable("teleport_identity", cfg.Identity); err != nil {
			return nil, err
		}
		c := &Credentials{path: cfg.Identity}
		if cfg.RefreshEnabled {
			d, err := client.NewDynamicIdentityFileCreds(cfg.Identity)
			if err != nil {
				return nil, fmt.Errorf("teleport_identity %s: cannot load identity file: %s", cfg.Identity, logging.OneLine(err.Error()))
			}
			c.Credentials, c.dynamic = d, d
		} else {
			c.Credentials = client.LoadIdentityFile(cfg.Identity)
		}
		if _, err := c.TLSConfig(); err != nil {
			return nil, fmt.Errorf("teleport_identity %s: cannot load identity file: %s", cfg.Identity, logging.OneLine(err.Error()))
		}
		if exp, ok := c.Credentials.(interface{ Expiry() (time.Time, bool) }); ok {
			if t, ok := exp.Expiry(); ok {
				c.expiry = t
			}
		}
		if !c.expiry.IsZero() && !c.expiry.After(now) && !cfg.RefreshEnabled {
			return nil, fmt.Errorf("teleport_identity %s: certificate expired at %s; renew it (tbot or tctl auth sign) or set teleport_refresh_enabled on to follow a file that tbot renews",
				cfg.Identity, c.expiry.UTC().Format(time.RFC3339))
		}
		return c, nil
	}
	for _, f := range []struct{ key, path string }{{"teleport_cert", cfg.Cert}, {"teleport_key", cfg.Key}, {"teleport_ca", cfg.CA}} {
		if err := readable(f.key, f.path); err != nil {
			return nil, err
		}
	}
	c := &Credentials{Credentials: client.LoadKeyPair(cfg.Cert, cfg.Key, cfg.CA), path: cfg.Cert}
	if _, err := c.TLSConfig(); err != nil {
		return nil, fmt.Errorf("teleport_cert %s / teleport_key %s / teleport_ca %s: cannot load key pair: %s", cfg.Cert, cfg.Key, cfg.CA, logging.OneLine(err.Error()))
	}
	// The TLS config hides the certificate behind GetClientCertificate:
	// ask the credentials for its expiry.
	if exp, ok := c.Credentials.(interface{ Expiry() (time.Time, bool) }); ok {
		if t, ok := exp.Expiry(); ok {
			c.expiry = t
		}
	}
	if !c.expiry.IsZero() && !c.expiry.After(now) {
		return nil, fmt.Errorf("teleport_cert %s: certificate expired at %s", cfg.Cert, c.expiry.UTC().Format(time.RFC3339))
	}
	return c, nil
}

// readable checks that path is a regular file that can be opened. It never
// blocks: a named pipe or a device (/dev/zero) would make the loader hang
// or read forever, so anything but a regular file is refused.
func readable(key, path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("%s %s: %s", key, path, logging.OneLine(err.Error()))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s %s: %s", key, path, logging.OneLine(err.Error()))
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s %s: not a regular file (%s)", key, path, fileKind(fi.Mode()))
	}
	return nil
}

// fileKind names a file type for a message.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

// RunRefresh re-reads the identity file every interval until ctx ends, so
// certificates that tbot renews keep working without a restart. A failed
// read keeps the previous credentials and is logged once per failure streak.
func (c *Credentials) RunRefresh(ctx context.Context, every time.Duration, log *logging.Logger, m *metrics.Metrics) {
	if c.dynamic == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := readable("teleport_identity", c.path) // a FIFO would block the reload
		if err == nil {
			err = c.dynamic.Reload()
		}
		if err != nil {
			if !failing {
				log.Warnf("teleport_identity %s: reload failed, keeping the previous certificate: %s", c.path, logging.OneLine(err.Error()))
			}
			failing = true
			continue
		}
		if failing {
			log.Infof("teleport_identity %s: reloaded", c.path)
		}
		failing = false
		if t, ok := c.dynamic.Expiry(); ok {
			c.expiry = t
			m.IdentityExpiry(t)
			log.Debugf("teleport_identity %s: reloaded, certificate valid until %s", c.path, t.UTC().Format(time.RFC3339))
		}
	}
}

// Dial connects to the Auth Service (or a Proxy) at addr. It returns once a
// connection is up, or with an error when ctx ends or every way of connecting
// failed.
func Dial(ctx context.Context, addr string, creds client.Credentials) (*client.Client, error) {
	return client.New(ctx, client.Config{
		Addrs:       []string{addr},
		Credentials: []client.Credentials{creds},
		DialTimeout: 15 * time.Second,
		// The sources back off on their own; the client's breaker would keep
		// refusing calls for a minute after an outage has ended.
		CircuitBreakerConfig: breaker.NoopBreakerConfig(),
		DialOpts: []grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)),
		},
	})
}
