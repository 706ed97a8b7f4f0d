package keys_test

import "github.com/rs/zerolog"

func nopLogger() zerolog.Logger { return zerolog.Nop() }
