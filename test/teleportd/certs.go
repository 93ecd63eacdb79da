package teleportd

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gravitational/teleport/api/constants"
	"github.com/gravitational/teleport/api/identityfile"
	"golang.org/x/crypto/ssh"
)

// DefaultUser and DefaultRoles are the bot identity WriteIdentity and
// WriteKeyPair issue credentials for.
const DefaultUser = "teleport-fluent-bit"

// DefaultRoles are the roles of DefaultUser.
var DefaultRoles = []string{"teleport-fluent-bit"}

// DefaultIdentityTTL is used when a ttl of 0 is given.
const DefaultIdentityTTL = 12 * time.Hour

// File names of the CA/server material inside Options.Dir.
const (
	fileTLSCACert  = "tls-ca.crt"
	fileTLSCAKey   = "tls-ca.key"
	fileSSHCAKey   = "ssh-ca.key"
	fileServerCert = "server.crt"
	fileServerKey  = "server.key"
)

// authority is the cluster's user/host CA: a TLS CA (x509) and an SSH CA.
type authority struct {
	clusterName string
	tlsCert     *x509.Certificate
	tlsCertPEM  []byte
	tlsKey      crypto.Signer
	sshSigner   ssh.Signer
}

func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func keyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func parseKeyPEM(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return s, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

// writeFileAtomic writes data to path through a temporary file and a rename,
// so that a concurrently reloading reader never sees a partial file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loadOrCreateAuthority loads the CA from dir, or creates (and saves) a new one.
func loadOrCreateAuthority(dir, clusterName string) (*authority, error) {
	a := &authority{clusterName: clusterName}
	certB, errC := os.ReadFile(filepath.Join(dir, fileTLSCACert))
	keyB, errK := os.ReadFile(filepath.Join(dir, fileTLSCAKey))
	sshB, errS := os.ReadFile(filepath.Join(dir, fileSSHCAKey))
	if errC == nil && errK == nil && errS == nil {
		blk, _ := pem.Decode(certB)
		if blk == nil {
			return nil, errors.New("teleportd: bad " + fileTLSCACert)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		key, err := parseKeyPEM(keyB)
		if err != nil {
			return nil, err
		}
		sk, err := parseKeyPEM(sshB)
		if err != nil {
			return nil, err
		}
		signer, err := ssh.NewSignerFromSigner(sk)
		if err != nil {
			return nil, err
		}
		a.tlsCert, a.tlsCertPEM, a.tlsKey, a.sshSigner = cert, certB, key, signer
		return a, nil
	}

	key, err := newKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject: pkix.Name{
			CommonName:   clusterName,
			Organization: []string{clusterName},
		},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	sk, err := newKey()
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromSigner(sk)
	if err != nil {
		return nil, err
	}
	a.tlsCert, a.tlsCertPEM, a.tlsKey, a.sshSigner = cert, certPEM(der), key, signer

	kp, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	skp, err := keyPEM(sk)
	if err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{fileTLSCACert: a.tlsCertPEM, fileTLSCAKey: kp, fileSSHCAKey: skp} {
		if err := writeFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// serverTLSCert issues the Auth Service's host certificate: SANs
// teleport.cluster.local (constants.APIDomain, the name the client uses for SNI
// and verification), localhost, and 127.0.0.1.
func (a *authority) serverTLSCert(dir string) (tls.Certificate, error) {
	key, err := newKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject: pkix.Name{
			CommonName:   "auth." + a.clusterName,
			Organization: []string{"Auth"},
		},
		DNSNames:    []string{constants.APIDomain, "*." + constants.APIDomain, "localhost", a.clusterName},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.tlsCert, key.Public(), a.tlsKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	cp := certPEM(der)
	if dir != "" {
		if err := writeFileAtomic(filepath.Join(dir, fileServerCert), cp, 0o600); err != nil {
			return tls.Certificate{}, err
		}
		if err := writeFileAtomic(filepath.Join(dir, fileServerKey), kp, 0o600); err != nil {
			return tls.Certificate{}, err
		}
	}
	return tls.X509KeyPair(append(cp, a.tlsCertPEM...), kp)
}

// userCreds is a freshly issued set of user credentials.
type userCreds struct {
	keyPEM  []byte
	tlsCert []byte // PEM
	sshCert []byte // authorized_keys format
}

// validity computes NotBefore/NotAfter for a ttl: 0 means DefaultIdentityTTL,
// a negative ttl yields credentials that are already expired (NotAfter = now+ttl).
func validity(ttl time.Duration) (time.Time, time.Time) {
	if ttl == 0 {
		ttl = DefaultIdentityTTL
	}
	now := time.Now()
	notAfter := now.Add(ttl)
	notBefore := now.Add(-time.Minute)
	if ttl < 0 {
		notBefore = notAfter.Add(-time.Hour)
	}
	return notBefore, notAfter
}

func (a *authority) issueUser(user string, roles []string, ttl time.Duration) (*userCreds, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	notBefore, notAfter := validity(ttl)
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		// Like Teleport: CN = user name, O = roles.
		Subject: pkix.Name{
			CommonName:   user,
			Organization: append([]string(nil), roles...),
		},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.tlsCert, key.Public(), a.tlsKey)
	if err != nil {
		return nil, err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, err
	}

	sshPub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	rolesJSON, _ := json.Marshal(map[string]any{"version": "v1", "roles": roles})
	sc := &ssh.Certificate{
		Key:             sshPub,
		Serial:          serial().Uint64(),
		CertType:        ssh.UserCert,
		KeyId:           user,
		ValidPrincipals: []string{user, "-teleport-internal-join"},
		ValidAfter:      uint64(notBefore.Unix()),
		ValidBefore:     uint64(notAfter.Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{
			"permit-X11-forwarding":     "",
			"permit-agent-forwarding":   "",
			"permit-port-forwarding":    "",
			"permit-pty":                "",
			"teleport-roles":            string(rolesJSON),
			"teleport-route-to-cluster": a.clusterName,
		}},
	}
	if err := sc.SignCert(rand.Reader, a.sshSigner); err != nil {
		return nil, err
	}
	return &userCreds{keyPEM: kp, tlsCert: certPEM(der), sshCert: ssh.MarshalAuthorizedKey(sc)}, nil
}

// knownHostsLine is the SSH host CA in known_hosts format, as Teleport writes it
// into identity files.
func (a *authority) knownHostsLine() []byte {
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(a.sshSigner.PublicKey())))
	return []byte(fmt.Sprintf("@cert-authority %s,*.%s %s clustername=%s&type=host\n",
		a.clusterName, a.clusterName, pub, a.clusterName))
}

// CACertPEM returns the cluster's TLS CA certificate (PEM).
func (s *Server) CACertPEM() []byte {
	return append([]byte(nil), s.ca.tlsCertPEM...)
}

// WriteIdentity writes an identity file (identityfile format: private key, SSH
// certificate, TLS certificate, SSH CA known_hosts line, TLS CA) for the
// default bot user, mode 0600, replacing path atomically. ttl 0 means
// DefaultIdentityTTL; a negative ttl writes an already expired identity.
func (s *Server) WriteIdentity(path string, ttl time.Duration) error {
	return s.WriteIdentityFor(path, DefaultUser, DefaultRoles, ttl)
}

// WriteIdentityFor is WriteIdentity for an arbitrary user and roles.
func (s *Server) WriteIdentityFor(path, user string, roles []string, ttl time.Duration) error {
	c, err := s.ca.issueUser(user, roles, ttl)
	if err != nil {
		return err
	}
	data, err := identityfile.Encode(&identityfile.IdentityFile{
		PrivateKey: c.keyPEM,
		Certs:      identityfile.Certs{SSH: c.sshCert, TLS: c.tlsCert},
		CACerts: identityfile.CACerts{
			SSH: [][]byte{s.ca.knownHostsLine()},
			TLS: [][]byte{s.ca.tlsCertPEM},
		},
	})
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data, identityfile.FilePermissions)
}

// WriteKeyPair writes a TLS client certificate, its private key and the CA
// certificate for client.LoadKeyPair (all mode 0600). caPath may be "" to skip
// the CA. ttl as for WriteIdentity.
func (s *Server) WriteKeyPair(certPath, keyPath, caPath string, ttl time.Duration) error {
	c, err := s.ca.issueUser(DefaultUser, DefaultRoles, ttl)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyPath, c.keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(certPath, c.tlsCert, 0o600); err != nil {
		return err
	}
	if caPath != "" {
		if err := writeFileAtomic(caPath, s.ca.tlsCertPEM, 0o600); err != nil {
			return err
		}
	}
	return nil
}
