package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"time"

	"github.com/gravitational/teleport/api/client"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The Event-Handler-style baseline: every event is marshalled to JSON and
// POSTed on its own over HTTPS with mutual TLS, waiting for the answer
// before the next one (what teleport-event-handler does towards Fluentd's
// in_http). The receiver is a Go net/http server on 127.0.0.1 that requires
// and verifies client certificates and answers 200 at once: no network
// latency and no sink work, so this is the most favourable case for the
// per-event design.

type baselineResult struct {
	n    int
	wall time.Duration
	cpu  time.Duration // this process (client and receiver)
}

func (b baselineResult) rate() float64 { return float64(b.n) / b.wall.Seconds() }

// sampleEvents fetches up to n events from the first chunks of the export.
func sampleEvents(ctx context.Context, clt *client.Client, from, to time.Time, n int) ([]*auditlogpb.EventUnstructured, error) {
	chunks, err := listAllChunks(ctx, clt, from, to)
	if err != nil {
		return nil, err
	}
	var out []*auditlogpb.EventUnstructured
	for _, c := range chunks {
		if len(out) >= n {
			break
		}
		cctx, cancel := context.WithCancel(ctx)
		st := clt.ExportUnstructuredEvents(cctx, &auditlogpb.ExportUnstructuredEventsRequest{Date: timestamppb.New(c.day), Chunk: c.chunk})
		for len(out) < n && st.Next() {
			out = append(out, st.Item().GetEvent())
		}
		st.Done()
		cancel()
	}
	return out, nil
}

func runBaseline(events []*auditlogpb.EventUnstructured) (baselineResult, error) {
	srvConf, cliConf, err := mtlsConfigs()
	if err != nil {
		return baselineResult{}, err
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", srvConf)
	if err != nil {
		return baselineResult{}, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "no client certificate", http.StatusUnauthorized)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})}
	go srv.Serve(l)
	defer srv.Close()

	url := "https://" + l.Addr().String() + "/teleport.audit"
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: cliConf, MaxIdleConnsPerHost: 1,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}}
	post := func(ev *auditlogpb.EventUnstructured) error {
		body, err := json.Marshal(ev.GetUnstructured().AsMap())
		if err != nil {
			return err
		}
		resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("receiver answered %s", resp.Status)
		}
		return nil
	}
	// Warm up: the TLS handshake and the first allocations are not counted.
	for _, ev := range events[:min(100, len(events))] {
		if err := post(ev); err != nil {
			return baselineResult{}, err
		}
	}
	cpu0, t0 := selfCPU(), time.Now()
	for _, ev := range events {
		if err := post(ev); err != nil {
			return baselineResult{}, err
		}
	}
	return baselineResult{n: len(events), wall: time.Since(t0), cpu: selfCPU() - cpu0}, nil
}

// mtlsConfigs makes a throw-away CA, a server certificate for 127.0.0.1 and
// a client certificate, and the TLS configurations of both ends.
func mtlsConfigs() (server, client *tls.Config, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (tls.Certificate, error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, err
		}
		t := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, t, ca, &k.PublicKey, caKey)
		if err != nil {
			return tls.Certificate{}, err
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, nil
	}
	sc, err := leaf(2, "receiver", x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, nil, err
	}
	cc, err := leaf(3, "event-handler", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, nil, err
	}
	server = &tls.Config{Certificates: []tls.Certificate{sc}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: pool, MinVersion: tls.VersionTLS12}
	client = &tls.Config{Certificates: []tls.Certificate{cc}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client, nil
}
