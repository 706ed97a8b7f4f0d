module github.com/edgeguard/edgeguard/plugins

go 1.26.8

require (
	github.com/Kong/go-pdk v0.11.2
	github.com/edgeguard/edgeguard/pkg v0.0.0
	google.golang.org/protobuf v1.36.2
)

replace github.com/edgeguard/edgeguard/pkg => ../pkg
