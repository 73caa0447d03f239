// A CoreDNS with only what the real node's pods need: cluster DNS names
// (`<pod>.<service>.<namespace>.svc.cluster.local`, Services) served from the
// local API server. Registries are out of reach, so it is built here from
// the Go module proxy like the rest of the local cluster.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// The order plugins run in; only these are compiled in.
	dnsserver.Directives = []string{"bind", "ready", "errors", "kubernetes"}
}

func main() {
	coremain.Run()
}
