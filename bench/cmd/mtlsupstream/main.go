// Command mtlsupstream is the upstream of `scripts/load-mtls.sh`: the same
// small JSON answer served over plain HTTP, over the services' mTLS
// listener (pkg/mtls: the edge's client certificate required) and, for the
// breakdown, over TLS without client certificates, so that one Kong run
// measures the hop every way. Bench only.
//
//	mtlsupstream -plain 127.0.0.1:P -tls 127.0.0.1:Q -tls-server-only 127.0.0.1:R
//	             -cert F -key F -client-ca F [-identity spiffe://edgeguard/edge]
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/mtls"
)

func main() {
	plain := flag.String("plain", "127.0.0.1:0", "plain HTTP listener")
	tlsAddr := flag.String("tls", "127.0.0.1:0", "mTLS listener")
	oneWay := flag.String("tls-server-only", "127.0.0.1:0", "TLS listener without client certificates (the breakdown: TLS alone)")
	cert := flag.String("cert", "", "server certificate (PEM)")
	key := flag.String("key", "", "its key (PEM)")
	ca := flag.String("client-ca", "", "CA of the client certificate (PEM)")
	identity := flag.String("identity", mtls.DefaultClientIdentity, "the client certificate's identity")
	flag.Parse()
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	id, err := mtls.ParseIdentity(*identity)
	if err != nil {
		fail(err)
	}
	srv, err := mtls.New(mtls.Config{CertFile: *cert, KeyFile: *key, ClientCAFile: *ca, ClientIdentities: []mtls.Identity{id}, Logger: log})
	if err != nil {
		fail(err)
	}
	body := `{"object":"list","data":[{"id":"stub-model","object":"model","owned_by":"edgeguard"}],"pad":"` + strings.Repeat("x", 200) + `"}`
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	})
	pl, err := net.Listen("tcp", *plain)
	if err != nil {
		fail(err)
	}
	tl, err := net.Listen("tcp", *tlsAddr)
	if err != nil {
		fail(err)
	}
	ol, err := net.Listen("tcp", *oneWay)
	if err != nil {
		fail(err)
	}
	kp, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		fail(err)
	}
	fmt.Printf("PLAIN_ADDR=%s\nTLS_ADDR=%s\nTLS_SERVER_ONLY_ADDR=%s\n", pl.Addr(), tl.Addr(), ol.Addr())
	_ = os.Stdout.Sync()
	mk := func() *http.Server {
		return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second, ErrorLog: mtls.ErrorLog(log)}
	}
	go func() { fail(mk().Serve(pl)) }()
	go func() {
		fail(mk().Serve(tls.NewListener(ol, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{kp}, NextProtos: []string{"http/1.1"}})))
	}()
	fail(mk().Serve(tls.NewListener(tl, srv.TLSConfig())))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mtlsupstream:", err)
	os.Exit(1)
}
