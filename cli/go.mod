module github.com/edgeguard/edgeguard/cli

go 1.26.8

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/cobra v1.8.1 // indirect
	github.com/spf13/pflag v1.0.5 // indirect
)

require github.com/edgeguard/edgeguard/pkg v0.0.0

replace github.com/edgeguard/edgeguard/pkg => ../pkg
