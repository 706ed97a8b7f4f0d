module github.com/edgeguard/edgeguard/plugins

go 1.26.8

require (
	github.com/Kong/go-pdk v0.11.2 // indirect
	github.com/mattn/go-colorable v0.1.13 // indirect
	github.com/mattn/go-isatty v0.0.19 // indirect
	github.com/rs/zerolog v1.33.0 // indirect
	golang.org/x/sys v0.12.0 // indirect
	google.golang.org/protobuf v1.36.2 // indirect
)

require github.com/edgeguard/edgeguard/pkg v0.0.0

replace github.com/edgeguard/edgeguard/pkg => ../pkg
