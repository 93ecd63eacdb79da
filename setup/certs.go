package setup

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/youmark/pkcs8"
)

// KeyLengths are the RSA key sizes configure accepts (the Event Handler's
// 1024, 2048 and 4096, plus 3072).
var KeyLengths = []int{1024, 2048, 3072, 4096}

// Subjects of the generated certificates.
const (
	caCommonName     = "teleport-fluent-bit CA"
	serverCommonName = "teleport-fluent-bit Fluentd server"
	clientCommonName = "teleport-fluent-bit Fluent Bit client"
)

// PBKDF2 parameters of the encrypted server key. The passphrase is 256
// random bits, so the iteration count only has to be sane, not slow.
const (
	kdfIterations = 100_000
	kdfSaltSize   = 16
)

// pair is a certificate and its RSA key.
type pair struct {
	cert *x509.Certificate
	der  []byte
	key  *rsa.PrivateKey
}

// certPEM returns the certificate PEM-encoded.
func (p *pair) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.der})
}

// keyPEM returns the key as unencrypted PKCS#8 PEM ("PRIVATE KEY").
func (p *pair) keyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(p.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// encryptedKeyPEM returns the key as encrypted PKCS#8 PEM ("ENCRYPTED
// PRIVATE KEY", PBES2: PBKDF2-HMAC-SHA256 and AES-256-CBC), which OpenSSL,
// and so Fluentd's OpenSSL::PKey::RSA.new(pem, passphrase) and Fluent Bit's
// tls.key_passwd, read. The standard library's x509.EncryptPEMBlock is
// deprecated because its legacy PEM encryption (MD5-based key derivation,
// unauthenticated CBC) is insecure by design.
func encryptedKeyPEM(key *rsa.PrivateKey, passphrase string) ([]byte, error) {
	der, err := pkcs8.MarshalPrivateKey(key, []byte(passphrase), &pkcs8.Opts{
		Cipher: pkcs8.AES256CBC,
		KDFOpts: pkcs8.PBKDF2Opts{
			SaltSize:       kdfSaltSize,
			IterationCount: kdfIterations,
			HMACHash:       crypto.SHA256,
		},
	})
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), nil
}

// DecryptKey parses an "ENCRYPTED PRIVATE KEY" PEM written by configure
// (server.key) with its passphrase.
func DecryptKey(pemBytes []byte, passphrase string) (crypto.Signer, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	if b.Type != "ENCRYPTED PRIVATE KEY" {
		return nil, fmt.Errorf("PEM block is %q, not an encrypted PKCS#8 key", b.Type)
	}
	k, err := pkcs8.ParsePKCS8PrivateKey(b.Bytes, []byte(passphrase))
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unexpected key type %T", k)
	}
	return s, nil
}

// newPassphrase returns 32 random bytes, hex-encoded (like the Event
// Handler's).
func newPassphrase() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

// keyID is the subject key identifier of pub (SHA-256 truncated, RFC 7093).
func keyID(pub *rsa.PublicKey) []byte {
	der := x509.MarshalPKCS1PublicKey(pub)
	sum := sha256.Sum256(der)
	return sum[:20]
}

// authority is the generated CA, server and client material.
type authority struct {
	ca, server, client *pair
}

// generate makes the three RSA keys (concurrently: RSA 4096 takes seconds
// each) and the certificates: a CA, a server certificate with the given SANs
// for Fluentd, and a client certificate for Fluent Bit.
func generate(length int, ttl time.Duration, dnsNames []string, ips []net.IP, now time.Time) (*authority, error) {
	keys := make([]*rsa.PrivateKey, 3)
	errs := make([]error, 3)
	done := make(chan struct{})
	for i := range keys {
		go func() {
			defer func() { done <- struct{}{} }()
			keys[i], errs[i] = rsa.GenerateKey(rand.Reader, length)
		}()
	}
	for range keys {
		<-done
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("generating RSA %d keys: %w", length, err)
	}

	// Valid from a minute ago, so a peer whose clock is slightly behind
	// accepts the certificates at once.
	notBefore := now.Add(-time.Minute).UTC()
	notAfter := now.Add(ttl).UTC()

	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: caCommonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		MaxPathLenZero:        true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          keyID(&keys[0].PublicKey),
	}
	ca, err := sign(caTmpl, caTmpl, keys[0], keys[0])
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}

	serverTmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: serverCommonName},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}
	server, err := sign(serverTmpl, ca.cert, keys[1], keys[0])
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}

	clientTmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: clientCommonName},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	client, err := sign(clientTmpl, ca.cert, keys[2], keys[0])
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return &authority{ca: ca, server: server, client: client}, nil
}

func sign(tmpl, parent *x509.Certificate, key, signer *rsa.PrivateKey) (*pair, error) {
	sn, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = sn
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &pair{cert: cert, der: der, key: key}, nil
}
