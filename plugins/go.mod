module github.com/edgeguard/edgeguard/plugins

go 1.26.8

require (
	github.com/Kong/go-pdk v0.11.2
	github.com/edgeguard/edgeguard/pkg v0.0.0
	github.com/rs/zerolog v1.33.0
	google.golang.org/protobuf v1.36.2
)

require (
	github.com/mattn/go-colorable v0.1.13 // indirect
	github.com/mattn/go-isatty v0.0.19 // indirect
	golang.org/x/sys v0.47.0 // indirect
)

replace github.com/edgeguard/edgeguard/pkg => ../pkg
